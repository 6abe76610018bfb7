"""Transaction operations in the writer's commit: a controller appends site records and
changes task rows in the same transaction as its run records."""

from __future__ import annotations

from pathlib import Path

import pytest

from cellauto.errors import FencedError, JournalError
from cellauto.records import Journal, RecordKind, verify_journal
from cellauto.records._txops import SiteAppend, TxOutcome
from cellauto.records.backend import Conn, Location
from cellauto.records.refs import SiteRef
from cellauto.records.site_chain import read_site_records
from cellauto.records.site_payloads import SitePayload
from cellauto.testing import raw_connection
from tests.records.conftest import START_S, StepClock, write_lock
from tests.records.factory import payload_of
from tests.records.site_factory import old_journal, policy, schema_version

QUIET = 3600.0


class InsertTask:
    """An op writing one ``tasks`` row (and failing after it, if asked)."""

    def __init__(self, task_id: str, run_id: str | None = None, fail: bool = False) -> None:
        self.task_id, self.run_id, self.fail = task_id, run_id, fail

    def apply(self, conn: Conn) -> TxOutcome:
        conn.execute(
            "INSERT INTO tasks VALUES (?, 'run-a', 'step', 'name', 'perform', 'open', 0, ?,"
            " '{}', NULL, 1, NULL, NULL, 1)",
            (self.task_id, "0" * 64),
        )
        if self.fail:
            raise ValueError(f"task {self.task_id} refused")
        return TxOutcome([], self.task_id)


def _count(path: Path, query: str) -> int:
    conn = raw_connection(path)
    try:
        return int(conn.execute(query).fetchone()[0])
    finally:
        conn.close()


def _tasks(path: Path) -> list[str]:
    conn = raw_connection(path)
    try:
        return [task for (task,) in conn.execute("SELECT task_id FROM tasks ORDER BY task_id")]
    finally:
        conn.close()


@pytest.mark.anyio
async def test_site_records_commit_with_the_run_records_before_them(journal_path: Location) -> None:
    with Journal(journal_path, owner_stale_s=QUIET) as journal:
        run = journal.begin_run("run-a", StepClock())
        run.append(payload_of(RecordKind.RUN_STARTED, {"run_id": "run-a"}))
        run.append(payload_of(RecordKind.READING, {"v": 1}))
        refs = await journal.site_append([policy(12), policy(13)])
        assert [ref.seq for ref in refs] == [0, 1]
        # one commit: the run's records, the site records and the site anchor
        assert _count(journal_path, "SELECT count(*) FROM records") == 2
        assert _count(journal_path, "SELECT count(*) FROM site_records") == 2
        kinds = _count(journal_path, "SELECT count(*) FROM ledger WHERE kind = 'site_anchor'")
        assert kinds == 1
        run.seal()
        report = verify_journal(journal)
    assert report.intact, report
    assert (report.site.records, report.site.head_hash) == (2, refs[-1].hash)


@pytest.mark.anyio
async def test_a_controller_and_a_face_append_to_one_site_chain(journal_path: Location) -> None:
    from cellauto.records.site_store import SiteStore

    with Journal(journal_path, owner_stale_s=QUIET) as journal:
        await journal.site_append([policy(12)])
        with SiteStore(journal_path) as store, store.transaction() as tx:
            tx.append(policy(13))
        refs = await journal.site_append([policy(14)])
        assert refs[0].seq == 2
        report = verify_journal(journal)
        records = list(read_site_records(journal._read()))
    assert report.intact, report
    assert [r.seq for r in records] == [0, 1, 2]


@pytest.mark.anyio
async def test_an_op_that_raises_is_rolled_back_alone(journal_path: Location) -> None:
    with Journal(journal_path, owner_stale_s=QUIET) as journal:
        run = journal.begin_run("run-a", StepClock())
        run.append(payload_of(RecordKind.RUN_STARTED, {"run_id": "run-a"}))
        with pytest.raises(ValueError, match="task t2 refused"):
            await journal.run_ops([InsertTask("t1"), InsertTask("t2", fail=True), InsertTask("t3")])
        assert _tasks(journal_path) == ["t1", "t3"]
        assert _count(journal_path, "SELECT count(*) FROM records") == 1
        assert await journal.run_ops([InsertTask("t4")]) == ["t4"]  # the writer goes on


@pytest.mark.anyio
async def test_each_op_gets_its_own_value(journal_path: Location) -> None:
    seen: list[int] = []

    def project(conn: Conn, payload: SitePayload, ref: SiteRef, wall: int) -> None:
        seen.append(ref.seq)

    with Journal(journal_path, owner_stale_s=QUIET) as journal:
        site = SiteAppend([policy()], project=project)
        values = await journal.run_ops([InsertTask("t1"), site, InsertTask("t2")])
    assert values[0] == "t1" and values[2] == "t2"
    assert site.refs(values[1])[0].seq == 0 and seen == [0]


@pytest.mark.anyio
async def test_an_op_of_a_run_taken_over_is_fenced(journal_path: Location) -> None:
    with Journal(journal_path, owner_stale_s=QUIET) as old:
        old_run = old.begin_run("run-a", StepClock())
        old_run.append(payload_of(RecordKind.RUN_STARTED, {"run_id": "run-a"}))
        old.flush()
        with Journal(journal_path, create=False, owner_stale_s=0) as new:
            new.resume_run("run-a", StepClock(START_S + 10))
            with pytest.raises(FencedError, match="taken over"):
                await old.run_ops([InsertTask("t1", run_id="run-a"), InsertTask("t2")])
    assert _tasks(journal_path) == ["t2"]  # the site-level op went in


@pytest.mark.anyio
async def test_ops_of_a_failed_commit_are_not_done_later(journal_path: Location) -> None:
    with Journal(journal_path, owner_stale_s=QUIET, timeout_s=0.05) as journal:
        journal.begin_run("run-a", StepClock()).append(
            payload_of(RecordKind.RUN_STARTED, {"run_id": "run-a"})
        )
        journal.flush()
        with write_lock(journal_path), pytest.raises(JournalError, match="locked"):
            await journal.site_append([policy()])
        journal.flush()
        assert _count(journal_path, "SELECT count(*) FROM site_records") == 0
        assert (await journal.site_append([policy()]))[0].seq == 0


@pytest.mark.anyio
async def test_a_site_append_upgrades_an_old_journal(tmp_path: Path) -> None:
    path = old_journal(tmp_path / "old.db", 3)
    with Journal(path, create=False, owner_stale_s=QUIET) as journal:
        await journal.site_append([policy()])
        assert verify_journal(journal).intact
    assert schema_version(path) == "8"
