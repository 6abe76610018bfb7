"""The tasks and run_requests index tables: conditional updates decide every race."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

import pytest

from cellauto.records import task_rows as rows
from cellauto.records._schema import CREATE_SITE
from cellauto.records.backend import Conn
from cellauto.testing import raw_connection
from tests.records.site_factory import old_journal

HASH = "a" * 64


@pytest.fixture
def conn() -> Conn:
    db = raw_connection(":memory:")
    db.executescript(CREATE_SITE)
    return db


def task(task_id: str = "7F3K2Q9A", run_id: str = "r1", **changes: object) -> rows.TaskRow:
    row = rows.TaskRow(
        task_id=task_id,
        run_id=run_id,
        step="receive_apheresis",
        name="connect apheresis bag",
        phase="perform",
        status="open",
        target_seq=12,
        target_hash=HASH,
        summary="{}",
        performer=None,
        opened_wall_ns=1,
        due_process_time_s=None,
        answer_site_seq=None,
        updated_wall_ns=1,
    )
    return row._replace(**changes)  # type: ignore[arg-type]


def test_of_two_answers_to_one_task_only_the_first_is_taken(conn: Conn) -> None:
    rows.put_task(conn, task())
    first = rows.mark_answered(
        conn, "7F3K2Q9A", phase="perform", target_seq=12, answer_site_seq=5, wall_time_ns=2
    )
    replay = rows.mark_answered(
        conn, "7F3K2Q9A", phase="perform", target_seq=12, answer_site_seq=6, wall_time_ns=3
    )
    assert (first, replay) == (True, False)
    stored = rows.read_task(conn, "7F3K2Q9A")
    assert stored is not None and stored.answer_site_seq == 5 and stored.status == "answered"


def test_an_answer_for_another_phase_or_target_is_not_taken(conn: Conn) -> None:
    rows.put_task(conn, task(phase="verify", target_seq=14, performer="alice"))
    args = {"answer_site_seq": 5, "wall_time_ns": 2}
    assert not rows.mark_answered(conn, "7F3K2Q9A", phase="perform", target_seq=14, **args)
    assert not rows.mark_answered(conn, "7F3K2Q9A", phase="verify", target_seq=12, **args)
    assert rows.mark_answered(conn, "7F3K2Q9A", phase="verify", target_seq=14, **args)


def test_a_timeout_loses_to_an_answer_that_got_there_first(conn: Conn) -> None:
    rows.put_task(conn, task())
    rows.mark_answered(
        conn, "7F3K2Q9A", phase="perform", target_seq=12, answer_site_seq=5, wall_time_ns=2
    )
    assert not rows.close_task(conn, "7F3K2Q9A", "expired", wall_time_ns=3, only_if_open=True)
    assert rows.close_task(conn, "7F3K2Q9A", "closed", wall_time_ns=3)


def test_open_and_answered_listings(conn: Conn) -> None:
    rows.put_task(conn, task("A", "r1", opened_wall_ns=5))
    rows.put_task(conn, task("B", "r2", opened_wall_ns=3))
    rows.put_task(conn, task("C", "r2", status="answered"))
    assert [t.task_id for t in rows.open_tasks(conn)] == ["B", "A"]
    assert [t.task_id for t in rows.open_tasks(conn, "r1")] == ["A"]
    assert [t.task_id for t in rows.answered_tasks(conn, ["r1", "r2"])] == ["C"]
    assert rows.answered_tasks(conn, []) == []


def test_verify_phase_reopens_with_the_new_target(conn: Conn) -> None:
    rows.put_task(conn, task(status="answered", answer_site_seq=5))
    rows.reopen_task(
        conn,
        "7F3K2Q9A",
        phase="verify",
        target_seq=20,
        target_hash="b" * 64,
        performer="alice",
        wall_time_ns=9,
    )
    stored = rows.read_task(conn, "7F3K2Q9A")
    assert stored is not None
    assert (stored.status, stored.phase, stored.target_seq, stored.performer) == (
        "open",
        "verify",
        20,
        "alice",
    )
    assert stored.answer_site_seq is None


def test_requests_are_settled_once_and_expire_unapplied(conn: Conn) -> None:
    for request_id, expires in (("q1", 100), ("q2", 10)):
        rows.put_request(
            conn,
            rows.RequestRow(request_id, "r1", "hold", 3, HASH, "pending", expires, None, None),
        )
    assert rows.expire_requests(conn, now_wall_ns=50) == 1
    assert [r.request_id for r in rows.pending_requests(conn, ["r1"])] == ["q1"]
    assert rows.settle_request(conn, "q1", "applied", outcome="held", run_seq=40)
    assert not rows.settle_request(conn, "q1", "refused", outcome="late")
    settled = rows.read_request(conn, "q2")
    assert settled is not None and settled.status == "expired"


def test_a_version_3_file_has_nothing_waiting(tmp_path: Path) -> None:
    path = old_journal(tmp_path / "v3.db", 3)
    with closing(raw_connection(path)) as db:
        assert rows.open_tasks(db) == []
        assert rows.read_task(db, "7F3K2Q9A") is None
        assert rows.pending_requests(db, ["r1"]) == []
