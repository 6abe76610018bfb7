"""TcpLabelPrinter: a Zebra-class label printer taking ZPL II on raw TCP (port 9100).

The wire is in docs/label-printer.md. Connecting asks ``~HI`` (model, firmware) and
the serial number (``! U1 getvar "device.unique_id"``). A print first asks ``~HS``: a
printer reporting head open, paper out, ribbon out or paused is refused before any ZPL
is sent. Then it names the container (``! U1 setvar "cellauto.sim.container"``, which
a real printer ignores and the simulated one uses to apply the label), sends the
format, and polls ``~HS`` until the label has left the printer's buffer.

Timeouts are real seconds on every clock (cellauto.clock): each reply within
``timeout_s``, the whole print within ``print_timeout_s``. A print is never sent twice
(it has a physical effect): a connection dropped during a print is an error to look at.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
from anyio.abc import SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream

from cellauto.clock import awaiting_outside, real_seconds
from cellauto.errors import BadInputError, InstrumentError
from cellauto.identity.zpl import ZplError, parse_zpl
from cellauto.instruments.base import InstrumentIdentity
from cellauto.instruments.label_printer import LabelPrinter, PrintJob
from cellauto.instruments.tcp.connection import (
    TcpConnectionError,
    TcpTimeoutError,
    connect_stream,
    parse_tcp_endpoint,
    within_real_s,
)
from cellauto.instruments.tcp.zebra import (
    ETX,
    HostStatus,
    ZebraReplyError,
    parse_hi,
    parse_hs,
    unframe,
)

__all__ = ["CONTAINER_VARIABLE", "VENDOR", "TcpLabelPrinter"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The vendor recorded for a printer answering the Zebra host queries.
VENDOR = "Zebra"
#: The SGD variable naming the container a label goes on (only the simulator reads it).
CONTAINER_VARIABLE = "cellauto.sim.container"
#: A reply frame longer than this is refused.
MAX_FRAME_BYTES = 4096

_REMEDY = {
    "head open": "close the print head",
    "paper out": "load labels",
    "ribbon out": "load a ribbon",
    "paused": "press PAUSE on the printer to resume it",
}


def _sgd_text(value: str, what: str) -> str:
    if not value or any(c in value for c in '"\r\n') or not value.isprintable():
        raise BadInputError(f"{what} must be one printable line without '\"', not {value!r}")
    return value


class TcpLabelPrinter(LabelPrinter):
    """Prints ZPL II through a printer's raw TCP port.

    Create with ``await TcpLabelPrinter.connect("tcp://192.168.0.20:9100")``; close with
    :meth:`aclose`.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        timeout_s: float = 5.0,
        print_timeout_s: float = 60.0,
        poll_s: float = 0.2,
    ) -> None:
        for name, value in (
            ("timeout_s", timeout_s),
            ("print_timeout_s", print_timeout_s),
            ("poll_s", poll_s),
        ):
            if not value > 0:
                raise BadInputError(f"LabelPrinter at {endpoint}: {name} must be positive")
        self.endpoint = endpoint
        self.host, self.port = parse_tcp_endpoint(endpoint)
        super().__init__(
            InstrumentIdentity(vendor=VENDOR, model="?", serial="?", firmware="?", adapter="tcp")
        )
        self.timeout_s = timeout_s
        self.print_timeout_s = print_timeout_s
        self.poll_s = poll_s
        self._stream: SocketStream | None = None
        self._receiver: BufferedByteReceiveStream | None = None
        self._lock = anyio.Lock()
        self._jobs = 0

    @property
    def where(self) -> str:
        return f"LabelPrinter {self.identity.serial} at {self.endpoint}"

    @classmethod
    async def connect(
        cls,
        endpoint: str,
        *,
        timeout_s: float = 5.0,
        print_timeout_s: float = 60.0,
        poll_s: float = 0.2,
    ) -> TcpLabelPrinter:
        """Connect and ask the printer who it is (``~HI``, its serial); errors name it."""
        printer = cls(endpoint, timeout_s=timeout_s, print_timeout_s=print_timeout_s, poll_s=poll_s)
        try:
            identification = parse_hi(await printer._request(b"~HI", "~HI", printer._read_frame))
            serial = await printer._serial()
        except ZebraReplyError as exc:
            await printer.aclose()
            raise InstrumentError(
                f"LabelPrinter at {endpoint}: {exc}; is this a ZPL II printer's raw port (9100)?"
            ) from None
        except BaseException:
            await printer.aclose()
            raise
        printer.identity = InstrumentIdentity(
            vendor=VENDOR,
            model=identification.model,
            serial=serial or "unknown",
            firmware=identification.firmware,
            adapter="tcp",
        )
        log.info("%s: connected (%s, %s)", printer.where, printer.identity.model, serial)
        return printer

    async def _serial(self) -> str:
        """SGD ``device.unique_id``; a ZPL printer without SGD: the serial is unknown."""
        try:
            return await self._request(
                b'! U1 getvar "device.unique_id"\r\n', "getvar device.unique_id", self._quoted
            )
        except TcpTimeoutError:
            log.warning(
                "LabelPrinter at %s: no answer to getvar device.unique_id (no SGD?); "
                "its serial is recorded as unknown",
                self.endpoint,
            )
            return "unknown"

    async def host_status(self) -> HostStatus:
        """``~HS``: the printer's status flags and what is in its buffer."""
        try:
            frames = await self._request(b"~HS", "~HS", self._read_status)
            return parse_hs(frames)
        except ZebraReplyError as exc:
            await self._close()
            raise InstrumentError(
                f"{self.where}: {exc}; check that the endpoint is the printer's raw ZPL port"
            ) from None

    async def print_label(self, zpl: str, container: str) -> PrintJob:
        _sgd_text(container, f"{self.where}: the container")
        try:
            printed = parse_zpl(zpl)
        except ZplError as exc:
            raise InstrumentError(f"{self.where}: label for {container!r} refused: {exc}") from None
        status = await self.host_status()
        if status.problems():
            raise InstrumentError(
                f"{self.where}: cannot print the label of {container!r}: the printer reports "
                f"{self._state(status)}; nothing was sent"
            )
        setvar = f'! U1 setvar "{CONTAINER_VARIABLE}" "{container}"\r\n'
        await self._request(setvar.encode() + zpl.encode("utf-8"), "the label", None)
        self._jobs += 1
        deadline = time.monotonic() + self.print_timeout_s
        while True:
            status = await self.host_status()
            if status.idle:
                break
            if time.monotonic() >= deadline:
                state = self._state(status) if status.problems() else "no fault"
                raise InstrumentError(
                    f"{self.where}: the label of {container!r} is still in the printer "
                    f"({status.formats_in_buffer} format(s) in its buffer) after "
                    f"{self.print_timeout_s:g} s; the printer reports {state}; check the "
                    "printer, then print the label again"
                )
            await anyio.sleep(real_seconds(self.poll_s))
        log.info("%s: job %d, label on %r", self.where, self._jobs, container)
        return PrintJob(job=self._jobs, container=container, symbols=len(printed.symbols))

    @staticmethod
    def _state(status: HostStatus) -> str:
        problems = status.problems()
        remedies = [_REMEDY[p] for p in problems if p in _REMEDY]
        todo = ", ".join(remedies) if remedies else "see the printer's display"
        return f"{', '.join(problems)} ({todo})"

    # the wire: raw bytes out, STX..ETX frames (or an SGD "value") back

    async def _read_frame(self) -> str:
        assert self._receiver is not None
        raw = await self._receiver.receive_until(ETX, MAX_FRAME_BYTES)
        return unframe(raw, "the query")

    async def _read_status(self) -> tuple[str, str, str]:
        return (await self._read_frame(), await self._read_frame(), await self._read_frame())

    async def _quoted(self) -> str:
        assert self._receiver is not None
        before = await self._receiver.receive_until(b'"', MAX_FRAME_BYTES)
        if before.strip(b"\r\n "):
            raise ZebraReplyError(f'getvar answered {before!r}, not a "quoted" value')
        value = await self._receiver.receive_until(b'"', MAX_FRAME_BYTES)
        return value.decode("utf-8", errors="replace")

    async def _open(self) -> None:
        await self._close()
        stream = await connect_stream(
            self.host,
            self.port,
            self.timeout_s,
            where=f"LabelPrinter at {self.endpoint}: cannot connect",
            hint="check that the printer is on and on the network, and that the line file "
            "gives its address and port (9100)",
        )
        self._stream = stream
        self._receiver = BufferedByteReceiveStream(stream)

    async def _request(
        self, payload: bytes, what: str, read: Callable[[], Awaitable[T]] | None
    ) -> T:
        async with self._lock:
            if self._stream is None:
                await self._open()
            stream = self._stream
            assert stream is not None

            async def exchange() -> T | None:
                await stream.send(payload)
                return None if read is None else await read()

            try:
                with awaiting_outside():
                    answer = await within_real_s(self.timeout_s, exchange)
            except TimeoutError:
                await self._close()
                raise TcpTimeoutError(
                    f"LabelPrinter at {self.endpoint}: no reply to {what} within "
                    f"{self.timeout_s:g} s; check the printer, or raise timeout_s in the line file"
                ) from None
            except anyio.DelimiterNotFound:
                await self._close()
                raise ZebraReplyError(
                    f"the reply to {what} is over {MAX_FRAME_BYTES} bytes without its end"
                ) from None
            except (
                anyio.EndOfStream,
                anyio.IncompleteRead,
                anyio.BrokenResourceError,
                anyio.ClosedResourceError,
                OSError,
            ) as exc:
                await self._close()
                raise TcpConnectionError(
                    f"LabelPrinter at {self.endpoint}: the printer closed the connection during "
                    f"{what} ({type(exc).__name__}); check the printer and the network"
                ) from None
            except BaseException:
                await self._close()
                raise
        return answer  # type: ignore[return-value]

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
