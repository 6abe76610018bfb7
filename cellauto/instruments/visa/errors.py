"""Errors of the VISA/SCPI adapters: garbled replies, refused commands, lost sessions."""

from __future__ import annotations

from cellauto.errors import InstrumentError, OutcomeUnknownError, OutOfRangeError

__all__ = [
    "ScpiInstrumentError",
    "ScpiOutOfRangeError",
    "ScpiReplyError",
    "VisaCommandUnconfirmedError",
    "VisaConnectionError",
    "quote_reply",
]

#: How much of a reply an error message quotes.
_QUOTED_BYTES = 160


def quote_reply(reply: bytes | str) -> str:
    """``reply`` as a short Python literal (bytes stay bytes so control bytes show)."""
    if len(reply) > _QUOTED_BYTES:
        return f"{reply[:_QUOTED_BYTES]!r}... ({len(reply)} {_unit(reply)})"
    return repr(reply)


def _unit(reply: bytes | str) -> str:
    return "bytes" if isinstance(reply, bytes) else "characters"


class ScpiReplyError(InstrumentError):
    """A reply that is not exactly what the command set promises: nothing is returned."""

    def __init__(self, problem: str, reply: bytes | str, *, where: str = "") -> None:
        self.problem = problem
        self.reply = reply
        self.where = where
        prefix = f"{where}: " if where else ""
        super().__init__(f"{prefix}garbled SCPI reply {quote_reply(reply)}: {problem}")

    def located(self, where: str, query: str) -> ScpiReplyError:
        """The same error, naming the instrument and the query that got the reply."""
        return ScpiReplyError(f"{self.problem} (reply to {query!r})", self.reply, where=where)


class ScpiInstrumentError(InstrumentError):
    """The instrument put errors in its queue (``SYST:ERR?``) after ``command``."""

    def __init__(self, where: str, command: str, errors: list[tuple[int, str]]) -> None:
        self.where = where
        self.command = command
        self.errors = errors
        listed = "; ".join(f'{code},"{text}"' for code, text in errors)
        super().__init__(f"{where}: {command!r} was refused: SCPI error {listed}")


class ScpiOutOfRangeError(ScpiInstrumentError, OutOfRangeError):
    """The instrument answered -222 "Data out of range" to ``command``."""


class VisaConnectionError(InstrumentError):
    """No (complete) reply in time, or the session could not be opened or was lost."""


class VisaCommandUnconfirmedError(VisaConnectionError, OutcomeUnknownError):
    """A command was sent and its confirmation could not be read."""
