"""Read-side models of the run journal: a stored record, and a run's summary."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from pydantic import BaseModel, ConfigDict, SerializeAsAny, ValidationError

from cellauto.errors import JournalError
from cellauto.records._sqlite import StoredRow
from cellauto.records.kinds import RecordKind
from cellauto.records.payloads import PAYLOAD_TYPES, Payload

__all__ = ["Record", "RunSummary", "utc_from_epoch_ns", "utc_from_epoch_s"]


def utc_from_epoch_s(seconds: float) -> datetime:
    """Return the aware UTC datetime of ``seconds`` since the Unix epoch (µs precision)."""
    return datetime.fromtimestamp(seconds, tz=UTC)


def utc_from_epoch_ns(nanoseconds: int) -> datetime:
    """Return the aware UTC datetime of ``nanoseconds`` since the epoch (truncated to µs)."""
    seconds, rest_ns = divmod(nanoseconds, 1_000_000_000)
    return datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=rest_ns // 1000)


class Record(BaseModel):
    """One journal record as stored: its body's fields plus its hash."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    seq: int
    kind: RecordKind
    process_time_s: float
    """Seconds since the Unix epoch on the process clock (virtual in simulation)."""
    wall_time_ns: int
    """``time.time_ns()`` when the record was appended."""
    prev_hash: str
    hash: str
    payload: SerializeAsAny[Payload]
    """The record's data: the payload model of its kind (:mod:`cellauto.records.payloads`)."""

    @classmethod
    def from_row(cls, run_id: str, row: StoredRow) -> Record:
        """Build a record from a stored row: the columns, and the payload of its body."""
        try:
            kind = RecordKind(row.kind)
            payload = PAYLOAD_TYPES[kind].model_validate(orjson.loads(row.body)["payload"])
            return cls(
                run_id=run_id,
                seq=row.seq,
                kind=kind,
                process_time_s=row.process_time_s,
                wall_time_ns=row.wall_time_ns,
                prev_hash=row.prev_hash,
                hash=row.hash,
                payload=payload,
            )
        except (orjson.JSONDecodeError, ValidationError, TypeError, KeyError, ValueError) as exc:
            raise JournalError(
                f"run {run_id!r} record {row.seq} ({row.kind}) cannot be read: {exc}; "
                "verify the run's chain"
            ) from exc

    @property
    def process_time(self) -> datetime:
        """Process time as an aware UTC datetime."""
        return utc_from_epoch_s(self.process_time_s)

    @property
    def wall_time(self) -> datetime:
        """Wall-clock time as an aware UTC datetime."""
        return utc_from_epoch_ns(self.wall_time_ns)


class RunSummary(BaseModel):
    """One run as derived from its records (see :meth:`Journal.runs`)."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    protocol_name: str | None
    """From the ``run_started`` record's payload; None if the run has none."""
    protocol_version: str | None
    state: str
    """``to_state`` of the last ``state_change`` record, or "Idle" if there is none."""
    exit_status: str | None
    """``exit_status`` of the ``run_ended`` record; None while the run has not ended."""
    started_process_time_s: float
    started_wall_time_ns: int
    duration_s: float
    """Process time from the first record to the last."""
    records: int
    """Number of records (last seq + 1)."""
    sealed: bool
