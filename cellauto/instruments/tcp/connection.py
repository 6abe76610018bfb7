"""A line-oriented TCP connection to a line device: one request, one reply line.

Used by the adapters of line devices that speak a plain text protocol over TCP (a
barcode scanner in TCP server mode). What it guarantees:

* **Real-second timeouts.** ``timeout_s`` (connecting, and waiting for a reply) is
  measured in real seconds on every loop, also on the virtual and the scaled clock of
  a simulated line: the limit is watched from a worker thread, never by a loop timer.
* **No stale replies.** A request whose reply did not come in time, or was cut off,
  closes the connection: a late reply can never answer the next request. The next
  request opens a new connection.
* **Clear errors.** :class:`TcpConnectionError` (cannot connect, or the device hung up)
  and :class:`TcpTimeoutError` (no reply in time) name the endpoint, the request and
  what to check. Whether to retry is the adapter's call (only requests without
  physical effect may be repeated).
* Requests are awaited inside :func:`cellauto.clock.awaiting_outside`, so a device
  simulated on the same virtual loop keeps process time as in-process.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
from anyio.abc import SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream

from cellauto.clock import awaiting_outside
from cellauto.errors import BadInputError, InstrumentError

__all__ = [
    "MAX_REPLY_BYTES",
    "TcpConnection",
    "TcpConnectionError",
    "TcpTimeoutError",
    "connect_stream",
    "parse_tcp_endpoint",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: A reply line longer than this is refused (and the connection closed).
MAX_REPLY_BYTES = 64 * 1024

_ENDPOINT = re.compile(r"^tcp://(?P<host>[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\]):(?P<port>\d{1,5})/?$")
_DROPPED = (
    anyio.EndOfStream,
    anyio.IncompleteRead,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    OSError,
)


class TcpConnectionError(InstrumentError):
    """The device cannot be reached, or hung up before it answered."""


class TcpTimeoutError(InstrumentError):
    """The device did not answer within the timeout (real seconds)."""


def parse_tcp_endpoint(endpoint: str) -> tuple[str, int]:
    """(host, port) of ``tcp://HOST:PORT``; BadInputError naming the form otherwise."""
    match = _ENDPOINT.match(endpoint.strip())
    port = int(match.group("port")) if match else -1
    if match is None or not 0 <= port <= 65535:
        raise BadInputError(
            f"endpoint {endpoint!r} is not tcp://HOST:PORT (e.g. tcp://192.168.0.10:9004)"
        )
    return match.group("host").strip("[]"), port


async def within_real_s(timeout_s: float, operation: Callable[[], Awaitable[T]]) -> T:
    """``await operation()``; TimeoutError once ``timeout_s`` real seconds have passed.

    The limit is kept by a worker thread (a loop timer would follow process time, which
    jumps or runs fast in simulation).
    """
    expired = False
    done = threading.Event()
    result: list[T] = []
    failure: list[BaseException] = []

    async def watch(scope: anyio.CancelScope) -> None:
        nonlocal expired
        try:
            finished = await anyio.to_thread.run_sync(done.wait, timeout_s, abandon_on_cancel=True)
        finally:
            done.set()  # the thread ends at once when the operation finished first
        if not finished:
            expired = True
            scope.cancel()

    async with anyio.create_task_group() as task_group:
        scope = anyio.CancelScope()
        task_group.start_soon(watch, scope)
        try:
            with scope:
                result.append(await operation())
        except Exception as exc:  # raised below, outside the task group (not in a group)
            failure.append(exc)
        finally:
            done.set()
            task_group.cancel_scope.cancel()
    if failure:
        raise failure[0]
    if expired and not result:
        raise TimeoutError(f"no answer within {timeout_s:g} s")
    return result[0]


async def connect_stream(
    host: str, port: int, timeout_s: float, *, where: str, hint: str
) -> SocketStream:
    """A TCP connection within ``timeout_s`` real seconds; TcpConnectionError saying
    ``where`` it failed, why, and ``hint`` (what to check) if it cannot be made."""
    try:
        with awaiting_outside():
            return await within_real_s(timeout_s, lambda: anyio.connect_tcp(host, port))
    except (OSError, TimeoutError) as exc:
        raise TcpConnectionError(
            f"{where}: {getattr(exc, 'strerror', None) or exc}; {hint}"
        ) from None


class TcpConnection:
    """A TCP connection to ``endpoint`` exchanging ``terminator``-ended text lines."""

    def __init__(
        self,
        endpoint: str,
        *,
        timeout_s: float = 5.0,
        terminator: bytes = b"\r",
        where: str | None = None,
    ) -> None:
        if not timeout_s > 0:
            raise BadInputError(f"{endpoint}: timeout_s must be positive, not {timeout_s!r}")
        self.endpoint = endpoint
        self.host, self.port = parse_tcp_endpoint(endpoint)
        self.timeout_s = timeout_s
        self.terminator = terminator
        self.where = where or endpoint
        self._stream: SocketStream | None = None
        self._receiver: BufferedByteReceiveStream | None = None
        self._lock = anyio.Lock()
        #: Connections opened (the first, then one per reconnect).
        self.connects = 0

    @property
    def is_open(self) -> bool:
        return self._stream is not None

    async def open(self) -> None:
        """Connect (closing any connection first); TcpConnectionError if it cannot."""
        await self._close()
        stream = await connect_stream(
            self.host,
            self.port,
            self.timeout_s,
            where=f"{self.where}: cannot connect to {self.endpoint}",
            hint="check that the device is on, in TCP server mode, and that the line file "
            "gives its address and port",
        )
        self._stream = stream
        self._receiver = BufferedByteReceiveStream(stream)
        self.connects += 1

    async def request(self, text: str, *, reply: bool = True) -> str | None:
        """Send ``text`` + terminator; the reply line without its terminator (or None
        when ``reply`` is False). Opens the connection first if it is closed."""
        payload = text.encode("utf-8")
        if self.terminator in payload or b"\n" in payload:
            raise BadInputError(f"{self.where}: a request is one line, not {text!r}")
        async with self._lock:
            if self._stream is None:
                await self.open()
            try:
                with awaiting_outside():
                    answer = await within_real_s(
                        self.timeout_s, lambda: self._exchange(payload, reply=reply)
                    )
            except TimeoutError:
                await self._close()  # a late reply must never answer the next request
                raise TcpTimeoutError(
                    f"{self.where}: no reply to {text!r} from {self.endpoint} within "
                    f"{self.timeout_s:g} s; check the device (its trigger settings, its "
                    "terminator CR) or raise timeout_s in the line file"
                ) from None
            except anyio.DelimiterNotFound:
                await self._close()
                raise TcpConnectionError(
                    f"{self.where}: the reply to {text!r} from {self.endpoint} is over "
                    f"{MAX_REPLY_BYTES} bytes with no terminator; check the device's "
                    "terminator setting (CR)"
                ) from None
            except _DROPPED as exc:
                await self._close()
                raise TcpConnectionError(
                    f"{self.where}: {self.endpoint} closed the connection during {text!r} "
                    f"({type(exc).__name__}); check the device and the network"
                ) from None
            except BaseException:  # cancelled: the reply may still come; drop the line
                await self._close()
                raise
        return answer

    async def _exchange(self, payload: bytes, *, reply: bool) -> str | None:
        assert self._stream is not None and self._receiver is not None
        await self._stream.send(payload + self.terminator)
        if not reply:
            return None
        raw = await self._receiver.receive_until(self.terminator, MAX_REPLY_BYTES)
        return raw.decode("utf-8", errors="replace").lstrip("\n")

    async def _close(self) -> None:
        stream, self._stream, self._receiver = self._stream, None, None
        if stream is not None:
            with anyio.CancelScope(shield=True):
                await stream.aclose()

    async def aclose(self) -> None:
        """Close the connection (after the request in progress, if any)."""
        with anyio.CancelScope(shield=True):
            async with self._lock:
                await self._close()
