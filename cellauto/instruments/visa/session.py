"""An SCPI session over VISA: queries with retries, commands with the error queue read.

Rules (docs/scpi.md, "Controller rules"):

* a **query** marked idempotent (a read without effect) is retried, ``retries`` times,
  after a timeout, a lost connection or a garbled reply, each time on a reopened
  session; a query that is not idempotent (``SYST:ERR?`` removes what it reads) never;
* a **command** is never retried: it is written together with ``SYST:ERR?`` in one
  message and the queue is then read until ``0,"No error"``; any error raises
  :class:`ScpiInstrumentError` (:class:`ScpiOutOfRangeError` for -222) naming the
  instrument, the command and the SCPI error. When the confirmation cannot be read
  the command may or may not have been carried out, and the error says so;
* a query the instrument refuses is answered with an empty line; the error queue
  then tells why and that error is raised (no retry: the instrument did answer).

Where the waiting happens. pyvisa blocks, and one event loop carries many batches, so
no wait for an instrument may block the loop. On a pyvisa-py socket session (every
``TCPIP::...::SOCKET`` instrument) a transaction runs on the loop's thread in pieces
that never block (:mod:`._connection`): the request is written, then

1. the socket is polled, without sleeping, for a short spin budget (``spin_s``,
   200 µs by default), the thread yielding its CPU between looks (``sched_yield``:
   on a busy machine an instrument served on this host may be waiting for this very
   core): an instrument on the same host or a fast LAN, or one asked several things
   in a row, has answered by then and the reply is read at once;
2. otherwise the task waits for the socket on the event loop (``add_reader``) with
   ``timeout_s`` as its limit, in real seconds on any clock
   (:func:`cellauto.clock.real_seconds`: ``timeout_s * scale`` on a scaled loop), inside
   :func:`cellauto.clock.awaiting_outside` so that virtual time does not jump past a
   request in flight. Where the loop's timer may still expire early (a virtual loop
   whose time jumps while a simulator on it serves), an expired timer is checked
   against real time, and the rest of the wait moves to the session's worker thread
   (:mod:`._thread`), where pyvisa's own timeout is real.

Everything else (opening a session, other backends such as pyvisa-sim, a session with
left-over bytes to sort out) runs whole in the worker thread. Why not always the thread:
measured in ``bench/bench_scpi.py``, each hand-off wakes a sleeping thread, which
costs tens of µs on a virtual machine; a bare blocking pyvisa query sleeps once (in
``select``), the loop's wait sleeps once (in ``epoll``) and the spin not at all. A
session that misses the spin budget twice in a row stops spinning for the next 1, then
3, 7, ... up to 1,023 transactions, so a slow instrument (or a simulator served on this
same loop, which cannot answer while the loop spins) costs almost no spinning; one
reply within the budget resets it. ``spin_s=0`` never spins. A cancelled wait closes
the session (reopened by the next transaction), so a late reply never answers
another request.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import weakref
from collections.abc import Callable
from functools import lru_cache, partial
from typing import TypeVar

import anyio

from cellauto.clock import awaiting_outside, real_seconds
from cellauto.errors import InstrumentError
from cellauto.instruments.visa._connection import Connection, Reply
from cellauto.instruments.visa._thread import SessionThread
from cellauto.instruments.visa.errors import (
    ScpiInstrumentError,
    ScpiOutOfRangeError,
    ScpiReplyError,
    VisaCommandUnconfirmedError,
    VisaConnectionError,
)
from cellauto.instruments.visa.scpi_reply import parse_error_entry, parse_idn, reply_text

__all__ = ["VisaSession"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: More entries than any error queue holds (ours: 10, then -350 "Queue overflow").
_MAX_ERROR_READS = 32
_ERROR_QUERY = "SYST:ERR?"
#: A session that keeps missing the spin budget tries again once per 1,024 transactions.
_MAX_SKIP = 1023
_CLEARS_ON_READ = re.compile(
    r":?(SYST(EM)?:ERR(OR)?(:NEXT)?|\*ESR|STAT(US)?:OPER(ATION)?(:EVEN(T)?)?)\?", re.IGNORECASE
)


class VisaSession:
    """One instrument reached through pyvisa (see the module for where each wait happens)."""

    def __init__(
        self,
        resource_name: str,
        *,
        timeout_s: float,
        retries: int,
        backend: str,
        spin_s: float = 200e-6,
    ) -> None:
        if timeout_s <= 0 or retries < 0 or not 0 <= spin_s <= 0.01:
            raise ValueError(
                "timeout_s must be > 0, retries >= 0 and 0 <= spin_s <= 0.01, not "
                f"{timeout_s}, {retries}, {spin_s}"
            )
        self.resource_name = resource_name
        self.timeout_s = timeout_s
        self.retries = retries
        #: Names the instrument in every error message (set once it is identified).
        self.where = resource_name
        #: Attempts that were repeated (idempotent queries only), for logs and tests.
        self.retried = 0
        #: Replies read within the spin budget / after waiting on the event loop / in the
        #: worker thread (statistics for logs, tests and benchmarks).
        self.replies_spun = 0
        self.replies_awaited = 0
        self.replies_threaded = 0
        self._spin = _SpinPolicy(spin_s)
        self._lock = asyncio.Lock()
        self._connection = Connection(resource_name, timeout_s=timeout_s, backend=backend)
        self._thread = SessionThread(f"visa {resource_name}")
        # a session dropped without aclose() still lets its thread end
        weakref.finalize(self, self._thread.stop)

    @classmethod
    async def open(
        cls,
        resource_name: str,
        *,
        timeout_s: float = 5.0,
        retries: int = 2,
        backend: str = "@py",
        spin_s: float = 200e-6,
    ) -> VisaSession:
        """Open ``resource_name`` (e.g. ``TCPIP0::127.0.0.1::5025::SOCKET``)."""
        session = cls(
            resource_name, timeout_s=timeout_s, retries=retries, backend=backend, spin_s=spin_s
        )
        try:
            await session._thread.run(session._connection.open)
        except BaseException:
            await session.aclose()
            raise
        return session

    async def identify(self) -> tuple[str, str, str, str]:
        """``*IDN?``: vendor, model, serial, firmware."""
        return await self.query("*IDN?", parse_idn)

    async def query(self, message: str, parse: Callable[[str], T], *, idempotent: bool = True) -> T:
        """Send ``message`` and return its reply parsed by ``parse`` (see the module).

        Reads that clear what they read (``SYST:ERR?``, ``*ESR?``, ``STAT:OPER[:EVEN]?``)
        are never repeated, whatever ``idempotent`` says.
        """
        payload = _payload(message)
        repeatable = idempotent and not _clears_on_read(message)
        attempts = 1 + (self.retries if repeatable else 0)
        for attempt in range(1, attempts + 1):
            try:
                raw = await self._transact(payload)
                text = reply_text(raw)
                if text == "":
                    await self._raise_refusal(message)
                    raise ScpiReplyError("empty reply and no error in the queue", raw)
                return parse(text)
            except ScpiReplyError as exc:
                failure: InstrumentError = exc.located(self.where, message)
                cause: Exception = exc
            except VisaConnectionError as exc:
                failure, cause = VisaConnectionError(f"{self.where}: {exc}"), exc
            await self._thread.run(self._connection.close_resource)
            if attempt == attempts:
                raise _tried(failure, attempts) from cause
            self.retried += 1
            log.warning(
                "%s; retrying %r on a new session (%d/%d)", failure, message, attempt, self.retries
            )
        raise AssertionError("unreachable")  # pragma: no cover

    async def command(self, message: str) -> None:
        """Send a command (never repeated) and raise the errors it left in the queue."""
        if message.split(maxsplit=1)[0].endswith("?"):
            raise ValueError(f"{message!r} is a query: use VisaSession.query")
        payload = _payload(message) + _payload(_ERROR_QUERY)
        try:
            first = parse_error_entry(reply_text(await self._transact(payload)))
            errors = [first] if first[0] != 0 else []
            if errors:
                errors += await self._drain_errors()
        except (ScpiReplyError, VisaConnectionError) as exc:
            await self._thread.run(self._connection.close_resource)
            raise VisaCommandUnconfirmedError(
                f"{self.where}: {message!r} was sent but not confirmed ({exc}); it may or may "
                "not have been carried out: check the instrument's state before repeating it"
            ) from exc
        if errors:
            raise _instrument_error(self.where, message, errors)

    async def _transact(self, payload: bytes) -> bytes:
        """Write ``payload`` and return its one raw reply line (see "Where the waiting happens")."""
        async with self._lock:
            if self._thread.idle and self._connection.start_inline(payload):
                return await self._await_reply(payload)
            (raw,) = await self._thread.run(partial(self._connection.transact, payload, 1))
            self.replies_threaded += 1
            return raw

    async def _await_reply(self, payload: bytes) -> bytes:
        """The reply to ``payload``, written from this thread: spin, then wait on the loop."""
        connection = self._connection
        if self._spin.wants_to_try():
            state = connection.spin(self._spin.budget_s)
            if state is not Reply.WAITING:
                self._spin.replied()
                self.replies_spun += 1
                return connection.take_reply(payload, state)
            self._spin.missed()
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + self.timeout_s
        try:
            with awaiting_outside():
                while (state := connection.reply_state()) is Reply.WAITING:
                    remaining_s = deadline - time.monotonic()
                    if remaining_s <= 0:
                        break
                    wait_s = real_seconds(remaining_s, loop)  # real seconds on any clock
                    readable = await _readable(loop, connection.fileno(), wait_s)
                    if readable is None or (not readable and time.monotonic() < deadline):
                        break  # no add_reader on this loop, or its clock ran ahead
        except BaseException:  # cancelled: a late reply must never answer another request
            connection.close_resource()
            raise
        if state is Reply.WAITING and time.monotonic() < deadline:
            return await self._finish_in_thread(payload)
        self.replies_awaited += 1
        return connection.take_reply(payload, state)

    async def _finish_in_thread(self, payload: bytes) -> bytes:
        """Read the rest of a reply in the worker thread, with pyvisa's real-time timeout.

        For loops whose clock is not real time (virtual, scaled): their timer may say
        ``timeout_s`` has passed while the instrument has had far less real time.
        """
        (raw,) = await self._thread.run(partial(self._connection.finish, payload, 1))
        self.replies_threaded += 1
        return raw

    async def read_errors(self) -> list[tuple[int, str]]:
        """Empty the error queue (``SYST:ERR?`` until 0) and return what it held."""
        return await self._drain_errors()

    async def _drain_errors(self) -> list[tuple[int, str]]:
        errors: list[tuple[int, str]] = []
        for _ in range(_MAX_ERROR_READS):
            code, text = await self.query(_ERROR_QUERY, parse_error_entry, idempotent=False)
            if code == 0:
                return errors
            errors.append((code, text))
        raise VisaConnectionError(
            f"{self.where}: the error queue did not empty after {_MAX_ERROR_READS} reads: {errors}"
        )

    async def _raise_refusal(self, query: str) -> None:
        errors = await self._drain_errors()
        if errors:
            raise _instrument_error(self.where, query, errors)

    async def aclose(self) -> None:
        """Close the session and end its thread, after the transaction in progress (if
        any) has ended: a wait for a reply is never cut from under it."""
        try:
            with anyio.CancelScope(shield=True):
                async with self._lock:
                    await self._thread.run(self._connection.close)
        except Exception as exc:
            log.debug("%s: error while closing: %s", self.where, exc)
        finally:
            self._thread.stop()
            self._thread.join(self.timeout_s)


class _SpinPolicy:
    """Whether the next transaction spins on the loop's thread (backs off after misses)."""

    def __init__(self, budget_s: float) -> None:
        self.budget_s = budget_s
        self._misses = 0
        self._skip = 0

    def wants_to_try(self) -> bool:
        if self.budget_s <= 0:
            return False
        if self._skip:
            self._skip -= 1
            return False
        return True

    def replied(self) -> None:
        self._misses = 0

    def missed(self) -> None:
        """One late reply is a hiccup; after k misses in a row skip 2**(k-1) - 1 tries."""
        self._misses += 1
        self._skip = min(2 ** (self._misses - 1) - 1, _MAX_SKIP)


async def _readable(loop: asyncio.AbstractEventLoop, fd: int, timeout_s: float) -> bool | None:
    """True when ``fd`` becomes readable, False when ``timeout_s`` of loop time passes
    first, None at once on a loop that cannot watch sockets (Windows' proactor loop)."""
    woken: asyncio.Future[bool] = loop.create_future()

    def wake(readable: bool) -> None:
        if not woken.done():
            woken.set_result(readable)

    try:
        loop.add_reader(fd, wake, True)
    except NotImplementedError:
        return None
    timer = loop.call_later(timeout_s, wake, False)
    try:
        return await woken
    finally:
        timer.cancel()
        loop.remove_reader(fd)


@lru_cache(maxsize=1024)
def _clears_on_read(message: str) -> bool:
    """Whether reading ``message`` removes what it reads (so it is never repeated)."""
    return _CLEARS_ON_READ.fullmatch(message.strip()) is not None


def _payload(message: str) -> bytes:
    if "\n" in message:
        raise ValueError(f"one SCPI message per call, without a newline: {message!r}")
    return message.encode("utf-8") + b"\n"


def _instrument_error(
    where: str, message: str, errors: list[tuple[int, str]]
) -> ScpiInstrumentError:
    if any(code == -222 for code, _ in errors):
        return ScpiOutOfRangeError(where, message, errors)
    return ScpiInstrumentError(where, message, errors)


def _tried(failure: InstrumentError, attempts: int) -> InstrumentError:
    if attempts == 1:
        return failure
    note = f" (tried {attempts} times)"
    if isinstance(failure, ScpiReplyError):
        return ScpiReplyError(failure.problem + note, failure.reply, where=failure.where)
    return type(failure)(f"{failure}{note}")
