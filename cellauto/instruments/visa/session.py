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
"""

from __future__ import annotations

import logging
import re
import weakref
from collections.abc import Callable
from functools import partial
from typing import TypeVar

from cellauto.errors import InstrumentError
from cellauto.instruments.visa._connection import Connection
from cellauto.instruments.visa._thread import SessionThread
from cellauto.instruments.visa.errors import (
    ScpiInstrumentError,
    ScpiOutOfRangeError,
    ScpiReplyError,
    VisaConnectionError,
)
from cellauto.instruments.visa.scpi_reply import parse_error_entry, parse_idn, reply_text

__all__ = ["VisaSession"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: More entries than any error queue holds (ours: 10, then -350 "Queue overflow").
_MAX_ERROR_READS = 32
_ERROR_QUERY = "SYST:ERR?"
_CLEARS_ON_READ = re.compile(
    r":?(SYST(EM)?:ERR(OR)?(:NEXT)?|\*ESR|STAT(US)?:OPER(ATION)?(:EVEN(T)?)?)\?", re.IGNORECASE
)


class VisaSession:
    """One instrument reached through pyvisa; every I/O runs in the session's own thread."""

    def __init__(self, resource_name: str, *, timeout_s: float, retries: int, backend: str) -> None:
        if timeout_s <= 0 or retries < 0:
            raise ValueError(f"timeout_s must be > 0 and retries >= 0, not {timeout_s}, {retries}")
        self.resource_name = resource_name
        self.timeout_s = timeout_s
        self.retries = retries
        #: Names the instrument in every error message (set once it is identified).
        self.where = resource_name
        #: Attempts that were repeated (idempotent queries only), for logs and tests.
        self.retried = 0
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
    ) -> VisaSession:
        """Open ``resource_name`` (e.g. ``TCPIP0::127.0.0.1::5025::SOCKET``)."""
        session = cls(resource_name, timeout_s=timeout_s, retries=retries, backend=backend)
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
        repeatable = idempotent and _CLEARS_ON_READ.fullmatch(message.strip()) is None
        attempts = 1 + (self.retries if repeatable else 0)
        for attempt in range(1, attempts + 1):
            try:
                (raw,) = await self._thread.run(partial(self._connection.transact, payload, 1))
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
            (raw,) = await self._thread.run(partial(self._connection.transact, payload, 1))
            first = parse_error_entry(reply_text(raw))
            errors = [first] if first[0] != 0 else []
            if errors:
                errors += await self._drain_errors()
        except (ScpiReplyError, VisaConnectionError) as exc:
            await self._thread.run(self._connection.close_resource)
            raise VisaConnectionError(
                f"{self.where}: {message!r} was sent but not confirmed ({exc}); it may or may "
                "not have been carried out: check the instrument's state before repeating it"
            ) from exc
        if errors:
            raise _instrument_error(self.where, message, errors)

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
        """Close the session and end its thread."""
        try:
            await self._thread.run(self._connection.close)
        except Exception as exc:
            log.debug("%s: error while closing: %s", self.where, exc)
        finally:
            self._thread.stop()
            self._thread.join(self.timeout_s)


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
