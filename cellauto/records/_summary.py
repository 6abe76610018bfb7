"""Derive :class:`RunSummary` objects from a journal's records."""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

import orjson

from cellauto.records import _sqlite
from cellauto.records.kinds import RecordKind
from cellauto.records.models import RunSummary

_log = logging.getLogger(__name__)


def _payload(row: _sqlite.StoredRow | None, run_id: str) -> dict[str, Any]:
    if row is None:
        return {}
    try:
        payload = orjson.loads(row.body)["payload"]
    except (orjson.JSONDecodeError, TypeError, KeyError):
        _log.warning("run %s record %d has an unreadable body; run verify", run_id, row.seq)
        return {}
    return payload if isinstance(payload, dict) else {}


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def summarize(conn: sqlite3.Connection, run_id: str) -> RunSummary | None:
    """Summarize one run, or return None if it has no records."""
    first = _sqlite.edge_row(conn, run_id, last=False)
    last = _sqlite.edge_row(conn, run_id, last=True)
    if first is None or last is None:
        return None
    started = _payload(first, run_id) if first.kind == RecordKind.RUN_STARTED else {}
    state_row = _sqlite.last_row_of_kind(conn, run_id, RecordKind.STATE_CHANGE.value)
    state = _payload(state_row, run_id).get("to_state") if state_row is not None else None
    ended_row = _sqlite.last_row_of_kind(conn, run_id, RecordKind.RUN_ENDED.value)
    return RunSummary(
        run_id=run_id,
        protocol_name=_text(started.get("protocol_name")),
        protocol_version=_text(started.get("protocol_version")),
        state=_text(state) or "Idle",
        exit_status=_text(_payload(ended_row, run_id).get("exit_status")),
        started_process_time_s=first.process_time_s,
        started_wall_time_ns=first.wall_time_ns,
        duration_s=last.process_time_s - first.process_time_s,
        records=last.seq + 1,
        sealed=_sqlite.seal_of(conn, run_id) is not None,
    )


def summarize_all(conn: sqlite3.Connection) -> list[RunSummary]:
    """Summaries of every run in the journal, ordered by start (wall time, then id)."""
    summaries = [s for run_id in _sqlite.run_ids(conn) if (s := summarize(conn, run_id))]
    summaries.sort(key=lambda s: (s.started_wall_time_ns, s.run_id))
    return summaries
