"""The ``tasks`` and ``run_requests`` tables: what waits for a person, and commands from afar.

Both are *indexes*, not records: the run chain holds what a task asked and what was
answered (``task_opened``, ``task_answered``, ...), the site chain holds who signed
(``task_answer``, ``signature``, ``run_command_requested``). The tables let a face find
open tasks without reading every run, and let a controller find answers and commands
for its runs without reading the site chain: one indexed query when the file changed.

Every state change is a *conditional* update (``WHERE status = 'open' AND phase = ?``):
of two terminals answering the same task at once, or an answer racing a timeout, one
wins and the other is refused (and journaled by its caller). A row edited in the file
can only hide or misdirect a task; what it points at is checked against the chains.

Task row lifecycle (``status``, ``phase``)::

    open/perform --answer--> answered/perform --controller--> open/verify (verify=True)
                                                          \\-> closed
    open/verify  --answer--> answered/verify  --controller--> closed (or open/perform,
                                                              attempt 2, on a rejection)
    open/*       --timeout (abort)--> expired;  --Stop/Abort--> withdrawn

Requests: ``pending`` --controller--> ``applied`` | ``refused``; never taken up before
``expires_wall_ns`` --> ``expired`` (a command is never applied late).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from typing import Literal, NamedTuple

from cellauto.records._schema import is_missing_table
from cellauto.records.backend import Conn

__all__ = [
    "RequestRow",
    "TaskRow",
    "answered_tasks",
    "close_task",
    "expire_requests",
    "mark_answered",
    "open_tasks",
    "pending_requests",
    "put_request",
    "put_task",
    "read_request",
    "read_task",
    "reopen_task",
    "settle_request",
]

TaskStatus = Literal["open", "answered", "closed", "expired", "withdrawn"]
TaskPhase = Literal["perform", "verify"]


class TaskRow(NamedTuple):
    """One row of ``tasks``: a task of a run, and what must be signed now."""

    task_id: str
    run_id: str
    step: str
    name: str
    phase: TaskPhase
    status: TaskStatus
    target_seq: int
    """The run record a signature of this phase signs (task_opened, then task_answered)."""
    target_hash: str
    summary: str
    """JSON: what is asked (the task_opened record's summary)."""
    performer: str | None
    """Who performed (the verify phase: that person may not verify)."""
    opened_wall_ns: int
    due_process_time_s: float | None
    answer_site_seq: int | None
    """The ``task_answer`` site record of the answer being taken up (status answered)."""
    updated_wall_ns: int


class RequestRow(NamedTuple):
    """One row of ``run_requests``: a signed command for a run, from another process."""

    request_id: str
    run_id: str
    command: str
    site_seq: int
    site_hash: str
    status: Literal["pending", "applied", "refused", "expired"]
    expires_wall_ns: int
    outcome: str | None
    run_seq: int | None


_TASK_COLUMNS = ", ".join(TaskRow._fields)
_REQUEST_COLUMNS = ", ".join(RequestRow._fields)


def _rows(conn: Conn, query: str, args: tuple[object, ...]) -> list[tuple[object, ...]]:
    try:
        return conn.execute(query, args).fetchall()
    except sqlite3.OperationalError as exc:
        if is_missing_table(exc):  # a file of an older version: nothing waits
            return []
        raise


def _in(values: Collection[str]) -> str:
    return ", ".join("?" * len(values))


# -- tasks --------------------------------------------------------------------------------
def put_task(conn: Conn, row: TaskRow) -> None:
    """Insert or replace a task's row (a resumed run opens its open tasks again)."""
    conn.execute(_PUT_TASK, row)


_PUT_TASK = (
    f"INSERT INTO tasks ({_TASK_COLUMNS}) VALUES ({_in(TaskRow._fields)}) ON CONFLICT (task_id)"
    " DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name in TaskRow._fields if name != "task_id")
)


def read_task(conn: Conn, task_id: str) -> TaskRow | None:
    rows = _rows(conn, f"SELECT {_TASK_COLUMNS} FROM tasks WHERE task_id = ?", (task_id,))
    return TaskRow(*rows[0]) if rows else None  # type: ignore[arg-type]


def open_tasks(conn: Conn, run_id: str | None = None) -> list[TaskRow]:
    """Tasks waiting for a person (all runs, or one), oldest first."""
    query = f"SELECT {_TASK_COLUMNS} FROM tasks WHERE status = 'open'"
    args: tuple[object, ...] = ()
    if run_id is not None:
        query += " AND run_id = ?"
        args = (run_id,)
    return [TaskRow(*r) for r in _rows(conn, query + " ORDER BY opened_wall_ns, task_id", args)]  # type: ignore[arg-type]


def answered_tasks(conn: Conn, run_ids: Collection[str]) -> list[TaskRow]:
    """Tasks of ``run_ids`` answered by a person and not yet taken up by the controller."""
    if not run_ids:
        return []
    query = (
        f"SELECT {_TASK_COLUMNS} FROM tasks WHERE status = 'answered'"
        f" AND run_id IN ({_in(run_ids)}) ORDER BY updated_wall_ns, task_id"
    )
    return [TaskRow(*r) for r in _rows(conn, query, tuple(run_ids))]  # type: ignore[arg-type]


def mark_answered(
    conn: Conn,
    task_id: str,
    *,
    phase: TaskPhase,
    target_seq: int,
    answer_site_seq: int,
    wall_time_ns: int,
) -> bool:
    """open -> answered, only if the task is still open in that phase for that target.

    False: someone else answered first, or it expired or was withdrawn (the caller
    journals the refusal). Inside the caller's write transaction."""
    cursor = conn.execute(
        "UPDATE tasks SET status = 'answered', answer_site_seq = ?, updated_wall_ns = ?"
        " WHERE task_id = ? AND status = 'open' AND phase = ? AND target_seq = ?",
        (answer_site_seq, wall_time_ns, task_id, phase, target_seq),
    )
    return cursor.rowcount == 1


def reopen_task(
    conn: Conn,
    task_id: str,
    *,
    phase: TaskPhase,
    target_seq: int,
    target_hash: str,
    performer: str | None,
    wall_time_ns: int,
) -> None:
    """The controller took an answer up and the task needs another signature."""
    conn.execute(
        "UPDATE tasks SET status = 'open', phase = ?, target_seq = ?, target_hash = ?,"
        " performer = ?, answer_site_seq = NULL, updated_wall_ns = ? WHERE task_id = ?",
        (phase, target_seq, target_hash, performer, wall_time_ns, task_id),
    )


def close_task(
    conn: Conn,
    task_id: str,
    status: Literal["closed", "expired", "withdrawn"],
    *,
    wall_time_ns: int,
    only_if_open: bool = False,
) -> bool:
    """End a task's row; ``only_if_open``: not if an answer got there first (a timeout)."""
    query = "UPDATE tasks SET status = ?, updated_wall_ns = ? WHERE task_id = ?"
    if only_if_open:
        query += " AND status = 'open'"
    return conn.execute(query, (status, wall_time_ns, task_id)).rowcount == 1


# -- run requests -----------------------------------------------------------------------
def put_request(conn: Conn, row: RequestRow) -> None:
    conn.execute(
        f"INSERT INTO run_requests ({_REQUEST_COLUMNS}) VALUES ({_in(RequestRow._fields)})", row
    )


def read_request(conn: Conn, request_id: str) -> RequestRow | None:
    rows = _rows(
        conn, f"SELECT {_REQUEST_COLUMNS} FROM run_requests WHERE request_id = ?", (request_id,)
    )
    return RequestRow(*rows[0]) if rows else None  # type: ignore[arg-type]


def pending_requests(conn: Conn, run_ids: Collection[str]) -> list[RequestRow]:
    if not run_ids:
        return []
    query = (
        f"SELECT {_REQUEST_COLUMNS} FROM run_requests WHERE status = 'pending'"
        f" AND run_id IN ({_in(run_ids)}) ORDER BY site_seq"
    )
    return [RequestRow(*r) for r in _rows(conn, query, tuple(run_ids))]  # type: ignore[arg-type]


def settle_request(
    conn: Conn,
    request_id: str,
    status: Literal["applied", "refused", "expired"],
    *,
    outcome: str,
    run_seq: int | None = None,
) -> bool:
    """pending -> ``status``; False if it was settled already (expired meanwhile)."""
    cursor = conn.execute(
        "UPDATE run_requests SET status = ?, outcome = ?, run_seq = ?"
        " WHERE request_id = ? AND status = 'pending'",
        (status, outcome, run_seq, request_id),
    )
    return cursor.rowcount == 1


def expire_requests(conn: Conn, now_wall_ns: int) -> int:
    """Settle as expired every pending request past its time; returns how many."""
    cursor = conn.execute(
        "UPDATE run_requests SET status = 'expired', outcome = 'no controller took it up in time'"
        " WHERE status = 'pending' AND expires_wall_ns <= ?",
        (now_wall_ns,),
    )
    return cursor.rowcount
