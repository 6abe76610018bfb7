"""Derive :class:`RunSummary` objects from a journal's records."""

from __future__ import annotations

import logging
from typing import TypeVar

from cellauto.errors import JournalError
from cellauto.records import _sqlite
from cellauto.records.backend import Conn
from cellauto.records.kinds import RecordKind
from cellauto.records.models import Record, RunSummary
from cellauto.records.payloads import Payload, RunEnded, RunStarted, StateChange

_P = TypeVar("_P", bound=Payload)

_log = logging.getLogger(__name__)


def _payload(row: _sqlite.StoredRow | None, run_id: str, kind: type[_P]) -> _P | None:
    if row is None:
        return None
    try:
        payload = Record.from_row(run_id, row).payload
    except JournalError:
        _log.warning("run %s record %d has an unreadable body; run verify", run_id, row.seq)
        return None
    return payload if isinstance(payload, kind) else None


def summarize(conn: Conn, run_id: str) -> RunSummary | None:
    """Summarize one run, or return None if it has no records."""
    first = _sqlite.edge_row(conn, run_id, last=False)
    last = _sqlite.edge_row(conn, run_id, last=True)
    if first is None or last is None:
        return None
    started = _payload(first, run_id, RunStarted)
    state_row = _sqlite.last_row_of_kind(conn, run_id, RecordKind.STATE_CHANGE.value)
    state = _payload(state_row, run_id, StateChange)
    ended_row = _sqlite.last_row_of_kind(conn, run_id, RecordKind.RUN_ENDED.value)
    ended = _payload(ended_row, run_id, RunEnded)
    return RunSummary(
        run_id=run_id,
        protocol_name=started.protocol_name if started else None,
        protocol_version=started.protocol_version if started else None,
        state=state.to_state if state else "Idle",
        exit_status=ended.exit_status if ended else None,
        started_process_time_s=first.process_time_s,
        started_wall_time_ns=first.wall_time_ns,
        duration_s=last.process_time_s - first.process_time_s,
        records=last.seq + 1,
        sealed=_sqlite.seal_of(conn, run_id) is not None,
    )


def summarize_all(conn: Conn) -> list[RunSummary]:
    """Summaries of every run in the journal, ordered by start (wall time, then id)."""
    summaries = [s for run_id in _sqlite.run_ids(conn) if (s := summarize(conn, run_id))]
    summaries.sort(key=lambda s: (s.started_wall_time_ns, s.run_id))
    return summaries
