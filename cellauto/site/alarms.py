"""Acknowledging a run's alarm: the person who saw it says so, with a comment.

An alarm (a ``alarm`` run record: a lost connection, an excursion, a probe drifting) stays
*unacknowledged* until a person with ``alarm.acknowledge`` (operators, supervisors, QA)
acknowledges it. The acknowledgement is an ``alarm_acknowledged`` site record naming the
alarm record by its seq and hash, the person, their session and terminal, and a comment:
an audited act of the person, not an electronic signature (it approves nothing). One per
alarm. A refusal (no permission, no such alarm, already acknowledged) is journaled as a
``signature_refused`` record without a meaning, naming the alarm, and raised.

:func:`open_alarms` lists alarms with their acknowledgement; the ``alarm_acks`` table
(schema version 7) is kept and verified by :mod:`cellauto.site.projection_alarms`.
"""

from __future__ import annotations

import sqlite3
from typing import Any, NamedTuple

import orjson

from cellauto.errors import BadInputError, PermissionRefusedError
from cellauto.records._schema import is_missing_table
from cellauto.records.backend import Conn
from cellauto.records.refs import RecordRef, SiteRef
from cellauto.records.site_payloads import AlarmAcknowledged, SignatureRefused
from cellauto.records.site_store import SiteStore, SiteTx
from cellauto.site._acts import Refused, actor_problem, run_act
from cellauto.site.auth import Authenticated
from cellauto.site.roles import Permission

__all__ = [
    "AlarmRow",
    "acknowledge_alarm",
    "open_alarms",
]


class AlarmRow(NamedTuple):
    """A run's alarm and, once acknowledged, by whom, when and with what comment."""

    run_id: str
    seq: int
    hash: str
    severity: str
    source: str
    message: str
    process_time_s: float
    wall_time_ns: int
    acked_by: str | None
    acked_wall_ns: int | None
    comment: str | None


def _select(conn: Conn, sql: str, args: tuple[object, ...] = ()) -> list[Any]:
    try:
        return conn.execute(sql, args).fetchall()
    except sqlite3.OperationalError as exc:
        if is_missing_table(exc):
            return []
        raise


def open_alarms(
    conn: Conn, *, run_id: str | None = None, include_acknowledged: bool = False
) -> list[AlarmRow]:
    """The alarms of one run or of every run, oldest first; unacknowledged only unless
    ``include_acknowledged``. (Through the ``records_alarms`` index on a version 7 file.)"""
    where, args = ("run_id = ? AND kind = 'alarm'", (run_id,)) if run_id else ("kind = 'alarm'", ())
    rows = conn.execute(
        "SELECT run_id, seq, hash, body, process_time_s, wall_time_ns FROM records"
        f" WHERE {where} ORDER BY wall_time_ns, run_id, seq",
        args,
    ).fetchall()
    acks = {
        (r, s): (by, at, src)
        for r, s, by, at, src in _select(
            conn, "SELECT run_id, run_seq, by_name, acked_wall_ns, source_seq FROM alarm_acks"
        )
    }
    comments: dict[int, str] = {}
    if acks:
        marks = ", ".join("?" * len(acks))
        for seq, body in conn.execute(
            f"SELECT seq, body FROM site_records WHERE seq IN ({marks})",
            [src for _, _, src in acks.values()],
        ):
            comments[seq] = orjson.loads(body)["payload"]["comment"]
    found: list[AlarmRow] = []
    for rid, seq, hash_, body, process_time_s, wall_time_ns in rows:
        payload = orjson.loads(body)["payload"]
        ack = acks.get((rid, seq))
        if ack is not None and not include_acknowledged:
            continue
        found.append(
            AlarmRow(
                run_id=rid,
                seq=seq,
                hash=hash_,
                severity=str(payload.get("severity", "")),
                source=str(payload.get("source", "")),
                message=str(payload.get("message", "")),
                process_time_s=process_time_s,
                wall_time_ns=wall_time_ns,
                acked_by=None if ack is None else ack[0],
                acked_wall_ns=None if ack is None else ack[1],
                comment=None if ack is None else comments.get(ack[2]),
            )
        )
    return found


def acknowledge_alarm(
    store: SiteStore, who: Authenticated, run_id: str, seq: int, *, comment: str
) -> SiteRef:
    """Acknowledge alarm record ``seq`` of run ``run_id`` as ``who``, with ``comment``
    (3 to 500 characters); refused (and journaled) when ``who`` may not, the record is no
    alarm of the run, or it was acknowledged already."""
    text = comment.strip()
    if not 3 <= len(text) <= 500:
        raise BadInputError("an acknowledgement needs a comment of 3 to 500 characters")

    def refused(cause: str, message: str, target: RecordRef | None) -> Refused:
        record = SignatureRefused(
            by=who.account.name,
            terminal=who.terminal,
            name=who.account.name,
            meaning=None,
            target=target,
            run_id=run_id,
            cause=cause,
            detail=message,
        )
        error = PermissionRefusedError if cause == "permission" else BadInputError
        return Refused(record, error(message))

    def body(tx: SiteTx) -> SiteRef:
        row = tx.conn.execute(
            "SELECT kind, hash FROM records WHERE run_id = ? AND seq = ?", (run_id, seq)
        ).fetchone()
        target = (
            None
            if row is None or row[0] != "alarm"
            else RecordRef(chain="run", run_id=run_id, seq=seq, hash=row[1], kind="alarm")
        )
        problem = actor_problem(
            tx, who, Permission.ALARM_ACKNOWLEDGE, f"acknowledge alarms of run {run_id}"
        )
        if problem is not None:
            raise refused(problem[0], problem[1], target)
        if target is None:
            raise refused(
                "target_missing",
                f"run {run_id} has no alarm at record #{seq}; `cellauto alarms list` shows them",
                None,
            )
        done = _select(
            tx.conn,
            "SELECT by_name FROM alarm_acks WHERE run_id = ? AND run_seq = ?",
            (run_id, seq),
        )
        if done:
            raise refused(
                "already_acknowledged",
                f"the alarm at record #{seq} of run {run_id} was acknowledged by {done[0][0]}",
                target,
            )
        return tx.append(
            AlarmAcknowledged(
                by=who.account.name,
                terminal=who.terminal,
                run_id=run_id,
                alarm=target,
                comment=text,
                session_id=who.session_id,
            )
        )

    return run_act(store, body)
