"""The ``tasks`` row changes a controller makes for the tasks of its people-answered runs.

Each is a function of the write connection, run by the writer thread in a commit
(:class:`~cellauto.records._txops.ConnOp`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

import orjson

from cellauto.errors import CellautoError
from cellauto.records.backend import Conn
from cellauto.records.task_rows import TaskRow, close_task, put_task, read_task, reopen_task

__all__ = ["answer_seq", "closing", "put_row", "reopening"]

Change = Callable[[Conn], object]


def put_row(row: TaskRow, look_up_target: bool) -> Callable[[Conn], object]:
    """Open the row; an answer already given to this phase (while the controller was
    down) is kept. A task taken up again after a crash finds its target in the chain."""

    def put(conn: Conn) -> object:
        nonlocal row
        if look_up_target:
            found = _target_of(conn, row)
            if found is None:
                raise CellautoError(f"task {row.task_id}: no record to sign in run {row.run_id}")
            row = row._replace(target_seq=found[0], target_hash=found[1])
        old = read_task(conn, row.task_id)
        if (
            old is not None
            and old.status == "answered"
            and (old.phase, old.target_seq) == (row.phase, row.target_seq)
        ):
            return False
        if old is not None and old.status == "open" and old.phase == "perform" == row.phase:
            row = row._replace(opened_wall_ns=old.opened_wall_ns)
        if old is not None and row.phase == "verify":
            reopen_task(
                conn,
                row.task_id,
                phase="verify",
                target_seq=row.target_seq,
                target_hash=row.target_hash,
                performer=row.performer,
                wall_time_ns=row.updated_wall_ns,
            )
            return True
        put_task(conn, row)
        return True

    return put


def _target_of(conn: Conn, row: TaskRow) -> tuple[int, str] | None:
    """(seq, hash) of the phase's record: the task's task_opened, or its task_answered."""
    kind = "task_opened" if row.phase == "perform" else "task_answered"
    found = None
    for seq, digest, body in conn.execute(
        "SELECT seq, hash, body FROM records WHERE run_id = ? AND kind = ? ORDER BY seq",
        (row.run_id, kind),
    ):
        if orjson.loads(body)["payload"].get("task_id") == row.task_id:
            found = (int(seq), str(digest))
    return found


def reopening(task_id: str, answer_site_seq: int | None = None) -> Change:
    """Open the phase again after an answer was refused (another may come); with
    ``answer_site_seq``: only if that answer is still the row's."""

    def reopen(conn: Conn) -> object:
        query = (
            "UPDATE tasks SET status = 'open', answer_site_seq = NULL, updated_wall_ns = ?"
            " WHERE task_id = ? AND status = 'answered'"
        )
        args: tuple[object, ...] = (time.time_ns(), task_id)
        if answer_site_seq is not None:
            query += " AND answer_site_seq = ?"
            args += (answer_site_seq,)
        return conn.execute(query, args).rowcount

    return reopen


def closing(task_id: str, status: Literal["closed", "expired", "withdrawn"]) -> Change:
    def close(conn: Conn) -> object:
        return close_task(conn, task_id, status, wall_time_ns=time.time_ns())

    return close


def answer_seq(row: TaskRow) -> int:
    return -1 if row.answer_site_seq is None else row.answer_site_seq
