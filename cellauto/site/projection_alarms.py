"""The ``alarm_acks`` projection (schema version 7): kept with each ``alarm_acknowledged``
site record (:func:`apply_alarm_projection`, inside the appending transaction and in
``verify``'s replay) and compared by ``verify`` (:func:`alarms_problem`). The act is
:mod:`cellauto.site.alarms`.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from cellauto.errors import JournalError
from cellauto.records._schema import is_missing_table
from cellauto.records.backend import Conn
from cellauto.records.refs import SiteRef
from cellauto.records.site_payload_base import SitePayload
from cellauto.records.site_payloads import AlarmAcknowledged

__all__ = ["alarms_problem", "apply_alarm_projection"]


def _select(conn: Conn, sql: str) -> list[Any]:
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.OperationalError as exc:
        if is_missing_table(exc):
            return []
        raise


def apply_alarm_projection(
    conn: Conn, payload: SitePayload, ref: SiteRef, wall_time_ns: int
) -> None:
    """The ``alarm_acks`` row of an ``alarm_acknowledged`` record (no-op for others)."""
    if not isinstance(payload, AlarmAcknowledged):
        return
    try:
        conn.execute(
            "INSERT INTO alarm_acks (run_id, run_seq, run_hash, by_name, acked_wall_ns,"
            " source_seq, source_hash) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                payload.run_id,
                payload.alarm.seq,
                payload.alarm.hash,
                payload.by,
                wall_time_ns,
                ref.seq,
                ref.hash,
            ),
        )
    except sqlite3.IntegrityError as exc:
        raise JournalError(
            f"site record {ref.seq} acknowledges the alarm at record #{payload.alarm.seq} of"
            f" run {payload.run_id}, which was acknowledged already"
        ) from exc


def _acks(conn: Conn) -> dict[tuple[str, int], tuple[Any, ...]]:
    return {
        (row[0], row[1]): tuple(row)
        for row in _select(conn, "SELECT * FROM alarm_acks ORDER BY run_id, run_seq")
    }


def alarms_problem(conn: Conn, scratch: Conn) -> str | None:
    """The first difference between the stored ``alarm_acks`` and the replay, or an
    acknowledgement of a record that is no alarm of its run (its hash differs); None."""
    have, want = _acks(conn), _acks(scratch)
    for key in sorted(set(have) | set(want)):
        if have.get(key) != want.get(key):
            return (
                f"alarm_acks table edited: the acknowledgement of record #{key[1]} of run"
                f" {key[0]} is not what the site records say"
            )
    for (run_id, seq), row in want.items():
        found = conn.execute(
            "SELECT kind, hash FROM records WHERE run_id = ? AND seq = ?", (run_id, seq)
        ).fetchone()
        if found is None or found[0] != "alarm" or found[1] != row[2]:
            return (
                f"site record {row[5]} acknowledges record #{seq} of run {run_id}, which is"
                " not that alarm"
            )
    return None
