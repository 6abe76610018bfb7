"""The writer thread: group fsync, failed commits, reads and close after appends."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from cellauto.errors import JournalError
from cellauto.records import Journal, RecordKind, verify_run
from cellauto.records import backend as db
from cellauto.records._txops import ConnOp
from cellauto.records._writer import Writer
from cellauto.records.backend import Conn, Location, Lock
from tests.records.conftest import stored_records as _stored
from tests.records.conftest import write_lock as _write_lock
from tests.records.factory import payload_of

MakeClock = Callable[..., Any]


def _writer(journal: Journal) -> Writer:
    assert journal._writer is not None
    return journal._writer


def test_durable_appends_of_concurrent_runs_share_one_fsync(
    journal: Journal, journal_path: Location, make_clock: MakeClock
) -> None:
    runs = [journal.begin_run(f"run-{i:03d}", make_clock()) for i in range(100)]
    for run in runs:
        run.append(payload_of(RecordKind.READING, {"v": 0}))
    journal.flush()
    before = (_writer(journal).commits, _writer(journal).fsyncs)

    async def main() -> None:
        async def intent(run: Any) -> None:
            seq, _ = await run.append_durable(
                payload_of(RecordKind.INSTRUMENT_COMMAND, {"method": "start_pump"})
            )
            assert seq == 1
            assert _stored(journal_path) >= 100 + seq + 1  # on disk when the await returns

        await asyncio.gather(*(intent(run) for run in runs))

    asyncio.run(main())
    writer = _writer(journal)
    assert (writer.commits, writer.fsyncs) == (before[0] + 1, before[1] + 1)
    assert _stored(journal_path) == 200


def test_a_durable_append_covers_records_already_committed_without_fsync(
    journal: Journal, journal_path: Location, make_clock: MakeClock
) -> None:
    run = journal.begin_run("run-a", make_clock())

    async def main() -> None:
        run.append(payload_of(RecordKind.READING, {"v": 1}))
        journal.flush()  # committed, not fsync'd
        fsyncs = _writer(journal).fsyncs
        await journal.wait_durable()  # nothing new to commit: the WAL is fsync'd
        assert _writer(journal).fsyncs == fsyncs + 1

    asyncio.run(main())


def test_a_failed_durable_commit_is_reported_and_loses_nothing(
    journal_path: Location, make_clock: MakeClock
) -> None:
    async def main(journal: Journal) -> None:
        run = journal.begin_run("run-a", make_clock())
        run.append(payload_of(RecordKind.READING, {"v": 1}))
        with _write_lock(journal_path):
            with pytest.raises(JournalError, match=r"cannot write 2 records.*kept in memory"):
                await run.append_durable(
                    payload_of(RecordKind.INSTRUMENT_COMMAND, {"method": "start"})
                )
            run.append(payload_of(RecordKind.READING, {"v": 3}))
            assert _stored(journal_path) == 0
        seq, _ = await run.append_durable(payload_of(RecordKind.READING, {"v": 4}))
        assert seq == 3 and _stored(journal_path) == 4  # the kept records went first

    with Journal(journal_path, timeout_s=0.05) as journal:
        asyncio.run(main(journal))
        assert [r.seq for r in journal.records("run-a")] == [0, 1, 2, 3]
        assert verify_run(journal, "run-a").intact


def test_reads_in_a_loop_see_every_record_appended_before_them(
    journal: Journal, make_clock: MakeClock
) -> None:
    async def main() -> None:
        runs = [journal.begin_run(f"run-{i}", make_clock()) for i in range(3)]
        for i in range(5):
            for run in runs:
                run.append(payload_of(RecordKind.READING, {"i": i}))
        # no await: the records are still in this tick's buffer
        assert [len(journal.records(run.run_id)) for run in runs] == [5, 5, 5]
        assert len(journal.runs()) == 3

    asyncio.run(main())


def test_closing_in_a_loop_writes_everything_and_stops_the_writer(
    journal_path: Location, make_clock: MakeClock
) -> None:
    journal = Journal(journal_path)

    async def main() -> None:
        run = journal.begin_run("run-a", make_clock())
        for i in range(10):
            run.append(payload_of(RecordKind.READING, {"i": i}))
        await asyncio.sleep(0)  # handed over, perhaps not yet committed
        run.append(payload_of(RecordKind.READING, {"i": 10}))  # still in the buffer
        thread = _writer(journal)._thread
        journal.close()
        assert not thread.is_alive()

    asyncio.run(main())
    assert _stored(journal_path) == 11
    with Journal(journal_path) as again:
        assert verify_run(again, "run-a").intact


def test_a_read_only_journal_starts_no_writer(
    journal_path: Location, make_clock: MakeClock
) -> None:
    with Journal(journal_path) as journal:
        journal.begin_run("run-a", make_clock()).append(payload_of(RecordKind.READING, {}))
    with Journal(journal_path, create=False) as reader:
        assert len(reader.records("run-a")) == 1
        assert reader._writer is None


def test_a_seal_whose_commit_fails_is_kept_and_written_later(
    journal_path: Location, make_clock: MakeClock
) -> None:
    with Journal(journal_path, timeout_s=0.05) as journal:
        run = journal.begin_run("run-a", make_clock())
        run.append(payload_of(RecordKind.READING, {"v": 1}))
        journal.flush()
        with _write_lock(journal_path), pytest.raises(JournalError, match="kept in memory"):
            run.seal()
        with pytest.raises(JournalError, match="sealed"):
            run.append(payload_of(RecordKind.READING, {"v": 2}))
        journal.flush()
        report = verify_run(journal, "run-a")
        assert report.intact and report.sealed


def test_a_state_change_in_a_loop_is_fsyncd_at_once_without_stalling_the_loop(
    journal: Journal, journal_path: Location, make_clock: MakeClock
) -> None:
    """``append(durable=True, wait=False)``: handed over urgent, committed with an fsync
    by the writer while the loop runs on; a later durable append waits for it."""
    run = journal.begin_run("run-a", make_clock())
    run.append(payload_of(RecordKind.READING, {"v": 0}))
    journal.flush()
    writer = _writer(journal)
    before = (writer.commits, writer.fsyncs)

    async def main() -> None:
        with _write_lock(journal_path):  # the writer cannot commit yet ...
            run.append(
                payload_of(RecordKind.STATE_CHANGE, {"from_state": "Running", "to_state": "Held"}),
                durable=True,
                wait=False,
            )  # ... and the append returned all the same: the loop was not stalled
            assert _stored(journal_path) == 1
        await journal.wait_durable()  # the next durable wait covers it
        assert _stored(journal_path) == 2

    asyncio.run(main())
    assert writer.fsyncs >= before[1] + 1 and writer.commits >= before[0] + 1


def test_an_op_in_the_writers_commit_may_take_the_asset_lock(journal: Journal) -> None:
    """A hold request (an op) takes the ASSET lock inside the writer's commit, which holds
    the ledger's already: the commit takes ASSET before LEDGER (PostgreSQL refuses locks
    asked out of their order) and the op's own ask is a no-op."""

    def change(conn: Conn) -> str:
        db.acquire(conn, Lock.ASSET)
        return "held"

    async def main() -> list[object]:
        return await journal.run_ops([ConnOp(change, run_id=None, what="hold")])

    assert asyncio.run(main()) == ["held"]
