"""The run queue: batches submitted by people, taken by controllers.

``cellauto run PROTOCOL --queue`` validates the run where it is typed, then
:func:`submit` appends a ``run_submitted`` site record (who submitted what: the
protocol by name, version and source SHA-256, the parameters, the line, the priority
and the run id, assigned now) and its projection, a ``run_queue`` row, in one site
transaction that also notifies ``cellauto_queue`` (delivered at its commit).

A controller :func:`take` s queued rows of its line (highest priority first, then in
submission order) with ``FOR UPDATE SKIP LOCKED``: two controllers never take one row.
A taken row goes ``started`` in the transaction that claims the run
(:func:`mark_started`, a claim-time op of :func:`cellauto.records._owners.at_claim`:
a run is never claimed with its row still ``taken``), ``refused`` with
the reason when the controller cannot run it (another source, instruments it does not
reach), back to ``queued`` when its controller is lost before the run began
(:func:`requeue_taken`). A person cancels a queued row (:func:`cancel`: a
``run_submission_cancelled`` site record).

The queue needs PostgreSQL: on SQLite one process runs one batch (``cellauto run``).
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple

from cellauto.errors import BadInputError, JournalError
from cellauto.records import backend as db
from cellauto.records.backend import Conn
from cellauto.records.backend.notify import notify
from cellauto.records.refs import SignatureShown
from cellauto.records.site_payloads import RunSubmissionCancelled, RunSubmitted, Terminal
from cellauto.records.site_store import SiteStore

__all__ = [
    "QUEUE_CHANNEL",
    "Admit",
    "QueueEntry",
    "QueueStatus",
    "cancel",
    "entry",
    "mark_started",
    "queue_rows",
    "requeue_taken",
    "settle",
    "submit",
    "take",
]

QUEUE_CHANNEL = "cellauto_queue"

QueueStatus = Literal["queued", "taken", "started", "refused", "cancelled"]

_COLUMNS = (
    "queue_seq, run_id, protocol, version, source_sha256, params, line, priority, status,"
    " controller, reason, submitted_wall_ns"
)


class QueueEntry(NamedTuple):
    """One ``run_queue`` row."""

    queue_seq: int
    run_id: str
    protocol: str
    version: str
    source_sha256: str
    params: dict[str, Any]
    line: str | None
    priority: int
    status: str
    controller: str | None
    reason: str | None
    submitted_wall_ns: int

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> QueueEntry:
        values = list(row)
        values[5] = json.loads(values[5])
        return cls(*values)


def _require_postgresql(conn: Conn, where: object) -> None:
    if not db.is_postgresql(conn):
        raise BadInputError(
            f"journal {where} is an SQLite file: the run queue and its controllers need a "
            "PostgreSQL journal (--db postgresql://...); on SQLite run the batch with "
            "`cellauto run` (without --queue)"
        )


def submit(
    store: SiteStore,
    *,
    protocol_name: str,
    protocol_version: str,
    source_sha256: str,
    parameters: dict[str, Any],
    line: str | None,
    priority: int,
    by: str,
    terminal: Terminal,
    signature: SignatureShown | None = None,
    run_id: str | None = None,
    seed: int | None = None,
) -> QueueEntry:
    """Queue a run (see the module doc); returns its row. Nothing is written if it fails."""
    run_id = run_id or uuid.uuid4().hex
    with store.transaction() as tx:
        _require_postgresql(tx.conn, store.location)
        ref = tx.append(
            RunSubmitted(
                by=by,
                terminal=terminal,
                reason=f"submitted to the run queue of line {line}" if line else "submitted",
                run_id=run_id,
                protocol_name=protocol_name,
                protocol_version=protocol_version,
                protocol_source_sha256=source_sha256,
                parameters=parameters,
                line=line,
                priority=priority,
                signature=signature,
                seed=seed,
            )
        )
        tx.conn.execute(
            "INSERT INTO run_queue (run_id, protocol, version, source_sha256, params, line,"
            " priority, status, submitted_wall_ns, source_seq, source_hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?)",
            (
                run_id,
                protocol_name,
                protocol_version,
                source_sha256,
                json.dumps(parameters, sort_keys=True),
                line,
                priority,
                tx.wall_time_ns,
                ref.seq,
                ref.hash,
            ),
        )
        notify(tx.conn, QUEUE_CHANNEL, run_id)
        found = entry(tx.conn, run_id)
    assert found is not None
    return found


def entry(conn: Conn, run_id: str) -> QueueEntry | None:
    """The queue row of ``run_id`` (None: never queued)."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM run_queue WHERE run_id = ?", (run_id,)).fetchone()
    return None if row is None else QueueEntry.from_row(row)


def queue_rows(conn: Conn, *, statuses: Sequence[str] = ()) -> list[QueueEntry]:
    """Rows of the queue in the order controllers take them (all, or those in ``statuses``)."""
    sql = f"SELECT {_COLUMNS} FROM run_queue"
    args: tuple[Any, ...] = ()
    if statuses:
        sql += f" WHERE status IN ({', '.join('?' for _ in statuses)})"
        args = tuple(statuses)
    try:
        rows = conn.execute(sql + " ORDER BY priority DESC, queue_seq", args).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise
    return [QueueEntry.from_row(row) for row in rows]


def cancel(
    store: SiteStore, run_id: str, *, by: str, reason: str, terminal: Terminal
) -> QueueEntry:
    """Cancel a queued run (not yet taken by a controller): a ``run_submission_cancelled``
    site record and the row ``cancelled``; JournalError (nothing written) otherwise."""
    if not reason.strip():
        raise BadInputError("say why the run must not be run (--reason)")
    with store.transaction() as tx:
        _require_postgresql(tx.conn, store.location)
        found = tx.conn.execute(
            f"SELECT {_COLUMNS} FROM run_queue WHERE run_id = ? FOR UPDATE", (run_id,)
        ).fetchone()
        if found is None:
            raise JournalError(f"no run {run_id} in the run queue of {store.location}")
        current = QueueEntry.from_row(found)
        if current.status != "queued":
            raise JournalError(
                f"run {run_id} is {current.status}"
                + (f" by controller {current.controller}" if current.controller else "")
                + ", not queued: only a queued run can be cancelled (stop a started run with"
                " `cellauto stop`)"
            )
        tx.append(RunSubmissionCancelled(by=by, reason=reason, terminal=terminal, run_id=run_id))
        tx.conn.execute(
            "UPDATE run_queue SET status = 'cancelled', reason = ? WHERE run_id = ?",
            (f"cancelled by {by}: {reason}", run_id),
        )
        notify(tx.conn, QUEUE_CHANNEL, run_id)
        done = entry(tx.conn, run_id)
    assert done is not None
    return done


Admit = Callable[[Conn, QueueEntry], bool]
"""``admit(conn, entry)``, in the taking transaction: whether the run can be taken now
(e.g. a free unit of each pool it needs was bound to it: :mod:`cellauto.controller.units`)."""

_LOOK_AHEAD = 64
"""Queued rows looked at beyond ``free`` when some are not admitted."""


def take(
    conn: Conn, *, line: str, controller: str, free: int, admit: Admit | None = None
) -> list[QueueEntry]:
    """Take up to ``free`` queued runs of ``line`` (or of no line) for ``controller``, in
    one transaction; rows another controller is taking meanwhile are skipped, and so are
    rows ``admit`` does not admit (they stay queued)."""
    if free <= 0:
        return []
    db.begin_write(conn)
    try:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM run_queue WHERE status = 'queued'"
            " AND (line = ? OR line IS NULL) ORDER BY priority DESC, queue_seq"
            " LIMIT ? FOR UPDATE SKIP LOCKED",
            (line, free if admit is None else free + _LOOK_AHEAD),
        ).fetchall()
        taken: list[QueueEntry] = []
        for row in rows:
            found = QueueEntry.from_row(row)
            if len(taken) < free and (admit is None or admit(conn, found)):
                taken.append(found)
        for found in taken:
            conn.execute(
                "UPDATE run_queue SET status = 'taken', controller = ? WHERE run_id = ?",
                (controller, found.run_id),
            )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return [found._replace(status="taken", controller=controller) for found in taken]


def settle(conn: Conn, run_id: str, status: QueueStatus, reason: str | None = None) -> None:
    """Move a taken row on (``started``, ``refused`` with why, ``queued`` again)."""
    db.begin_write(conn)
    try:
        conn.execute(
            "UPDATE run_queue SET status = ?, reason = ? WHERE run_id = ?",
            (status, reason, run_id),
        )
        if status in ("refused", "queued"):
            notify(conn, QUEUE_CHANNEL, run_id)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def mark_started(conn: Conn, run_id: str, controller: str) -> None:
    """In the run's claim transaction: its row, taken by ``controller``, goes ``started``;
    JournalError (the claim is rolled back) if the row is not that controller's."""
    changed = conn.execute(
        "UPDATE run_queue SET status = 'started', reason = NULL"
        " WHERE run_id = ? AND status = 'taken' AND controller = ?",
        (run_id, controller),
    ).rowcount
    if changed != 1:
        row = conn.execute(
            "SELECT status, controller FROM run_queue WHERE run_id = ?", (run_id,)
        ).fetchone()
        now = "no queue row" if row is None else f"status {row[0]}, controller {row[1]}"
        raise JournalError(
            f"run {run_id}: its queue row is not taken by controller {controller} ({now}); "
            "the run was not claimed"
        )


def requeue_taken(conn: Conn, controller: str) -> list[str]:
    """In the caller's transaction: the rows ``controller`` took but never started (it
    was lost before the run's claim) go back to the queue; their run ids. Rows whose run
    it claimed but did not mark ``started`` (lost in between) are marked so."""
    conn.execute(
        "UPDATE run_queue SET status = 'started' WHERE status = 'taken' AND controller = ?"
        " AND EXISTS (SELECT 1 FROM run_owners o WHERE o.run_id = run_queue.run_id)",
        (controller,),
    )
    rows = conn.execute(
        "SELECT q.run_id FROM run_queue q WHERE q.status = 'taken' AND q.controller = ?"
        " AND NOT EXISTS (SELECT 1 FROM run_owners o WHERE o.run_id = q.run_id)",
        (controller,),
    ).fetchall()
    for (run_id,) in rows:
        conn.execute(
            "UPDATE run_queue SET status = 'queued', controller = NULL,"
            " reason = ? WHERE run_id = ?",
            (f"controller {controller} was lost before the run began", run_id),
        )
        notify(conn, QUEUE_CHANNEL, run_id)
    return [str(run_id) for (run_id,) in rows]
