"""The payloads of instrument records: commands, responses, readings, and the waits
for shared instruments (issue 15, §5). Importable from :mod:`cellauto.records.payloads`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from cellauto.records.kinds import RecordKind
from cellauto.records.payload_base import Payload

__all__ = [
    "ErrorInfo",
    "InstrumentCommand",
    "InstrumentReleased",
    "InstrumentResponse",
    "InstrumentWaited",
    "Reading",
    "WaitedFor",
]

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class ErrorInfo(BaseModel):
    """An exception, for the record."""

    model_config = _FROZEN

    type: str
    message: str


# -- instruments ------------------------------------------------------------------------
class InstrumentCommand(Payload):
    """The intent of a physical action, written durably before the instrument is told."""

    kind: ClassVar[RecordKind] = RecordKind.INSTRUMENT_COMMAND

    instrument: str
    method: str
    arguments: dict[str, Any]
    step: str | None


class InstrumentResponse(Payload):
    """How a command ended (or how a query or stream failed)."""

    kind: ClassVar[RecordKind] = RecordKind.INSTRUMENT_RESPONSE

    instrument: str
    method: str
    command_seq: int | None
    """The seq of the command record it answers; None for a failed query or stream."""
    step: str | None
    ok: bool
    result: Any = None
    error: ErrorInfo | None = None
    outcome_unknown: bool = False
    """Sent, but whether it was carried out is unknown: the command stays in doubt."""
    arguments: dict[str, Any] | None = None
    """With a failure: the arguments of the failed call."""
    duration_s: float


class Reading(Payload):
    """What a query returned, or one item of a stream."""

    kind: ClassVar[RecordKind] = RecordKind.READING

    instrument: str
    method: str
    arguments: dict[str, Any]
    step: str | None
    value: Any


# -- shared instruments (issue 15, §5) ----------------------------------------------------
class WaitedFor(BaseModel):
    """A run the waiting run waited for: holding the asset, or before it in the queue."""

    model_config = _FROZEN

    run_id: str
    status: str = "granted"
    """``granted`` (it held the asset) or ``waiting`` (it was before in the queue)."""
    deadline_process_time_s: float | None = None
    overdue: bool = False
    """A holder past its declared maximum hold when the wait ended."""


class InstrumentWaited(Payload):
    """A step waited for a shared instrument: who it waited for, and how long."""

    kind: ClassVar[RecordKind] = RecordKind.INSTRUMENT_WAITED

    instrument: str
    asset: str | None = None
    step: str | None = None
    purpose: str | None = None
    ticket: str | None = None
    requested_process_time_s: float | None = None
    granted_process_time_s: float | None = None
    waited_s: float | None = None
    position: int | None = None
    """How many tickets were before it when it asked (holders and earlier waiters)."""
    waited_for: list[WaitedFor] = Field(default_factory=list)
    deadline_process_time_s: float | None = None
    priority: int | None = None


class InstrumentReleased(Payload):
    """A step let go of a shared instrument it had waited for or held past its maximum."""

    kind: ClassVar[RecordKind] = RecordKind.INSTRUMENT_RELEASED

    instrument: str
    asset: str | None = None
    step: str | None = None
    ticket: str | None = None
    held_s: float | None = None
    max_hold_s: float | None = None
    overdue: bool = False
