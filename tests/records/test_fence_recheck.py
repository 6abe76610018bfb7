"""The fence reads the owners of all the runs a writer holds in one query (issue 15, E2)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cellauto.records import Journal, RecordKind
from cellauto.records import backend as db
from cellauto.records._fence import RECHECK_CHUNK, Fence
from cellauto.records.backend import Conn, Location
from tests.records.conftest import StepClock
from tests.records.factory import payload_of

QUIET = 3600.0


class CountingConn:
    """A connection that counts the statements reading ``run_owners``."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        self.owner_reads = 0

    def execute(self, sql: str, params: Any = ()) -> Any:
        if "FROM run_owners" in sql:
            self.owner_reads += 1
        return self.conn.execute(sql, params)


def test_the_fence_reads_every_runs_owner_at_once_and_loses_only_runs_taken_over(
    db_location: Location, raw_db: Callable[[Location], Conn]
) -> None:
    run_ids = [f"run-{i}" for i in range(7)]
    with Journal(db_location, owner_stale_s=QUIET) as journal:
        for run_id in run_ids:
            journal.begin_run(run_id, StepClock()).append(
                payload_of(RecordKind.READING, {"v": run_id})
            )
        journal.flush()
        owned = dict(journal._owned)
    assert sorted(owned) == run_ids
    lost: dict[str, str] = {}
    fence = Fence(db_location, owned, lost, stale_s=QUIET)
    rows = [(run_id, 1) for run_id in run_ids]
    conn = raw_db(db_location)
    try:
        counting = CountingConn(conn)
        db.begin_write(conn)
        admitted, _ = fence.admit(counting, rows, [])  # type: ignore[arg-type]
        conn.execute("COMMIT")
        assert (admitted, lost, counting.owner_reads) == (rows, {}, 1)
        # another controller takes run-3 over: the generation moves, run-3 is lost alone
        conn.execute("UPDATE run_owners SET epoch = epoch + 1 WHERE run_id = 'run-3'")
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('owner_generation', '1') ON CONFLICT (key)"
            " DO UPDATE SET value = CAST(CAST(meta.value AS INTEGER) + 1 AS TEXT)"
        )
        db.begin_write(conn)
        admitted, _ = fence.admit(counting, rows, [])  # type: ignore[arg-type]
        conn.execute("COMMIT")
    finally:
        conn.close()
    assert counting.owner_reads == 2
    assert [row[0] for row in admitted] == [r for r in run_ids if r != "run-3"]
    assert list(lost) == ["run-3"] and "epoch 1" in lost["run-3"]


def test_more_runs_than_a_query_takes_are_read_in_chunks(
    db_location: Location, raw_db: Callable[[Location], Conn], monkeypatch: Any
) -> None:
    monkeypatch.setattr("cellauto.records._fence.RECHECK_CHUNK", 3)
    assert RECHECK_CHUNK >= 100
    with Journal(db_location, owner_stale_s=QUIET) as journal:
        for i in range(7):
            journal.begin_run(f"run-{i}", StepClock()).append(
                payload_of(RecordKind.READING, {"v": i})
            )
        journal.flush()
        owned = dict(journal._owned)
    lost: dict[str, str] = {}
    fence = Fence(db_location, owned, lost, stale_s=QUIET)
    conn = raw_db(db_location)
    try:
        conn.execute("DELETE FROM run_owners WHERE run_id = 'run-6'")  # the last chunk's
        counting = CountingConn(conn)
        db.begin_write(conn)
        fence.admit(counting, [], [])  # type: ignore[arg-type]
        conn.execute("COMMIT")
    finally:
        conn.close()
    assert counting.owner_reads == 3
    assert list(lost) == ["run-6"] and "nobody" in lost["run-6"]
