"""When records reach the disk: durable appends, end-of-tick flushes, failed flushes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest

from cellauto.errors import JournalError
from cellauto.records import FLUSH_THRESHOLD, Journal, RecordKind, verify_run
from cellauto.records.backend import Location
from tests.records.conftest import stored_records as _stored
from tests.records.conftest import write_lock as _write_lock
from tests.records.factory import payload_of

MakeClock = Callable[..., Any]


def test_durable_append_is_on_disk_when_it_returns(
    journal: Journal, journal_path: Location, make_clock: MakeClock
) -> None:
    run = journal.begin_run("run-a", make_clock())
    run.append(payload_of(RecordKind.READING, {"v": 1}))
    assert _stored(journal_path) == 0  # buffered: no loop, no durability asked
    run.append(payload_of(RecordKind.INSTRUMENT_COMMAND, {"method": "start_pump"}), durable=True)
    assert _stored(journal_path) == 2  # the buffered record went with it, in order


def test_buffer_is_flushed_at_the_threshold(
    journal: Journal, journal_path: Location, make_clock: MakeClock
) -> None:
    run = journal.begin_run("run-a", make_clock())
    for i in range(FLUSH_THRESHOLD - 1):
        run.append(payload_of(RecordKind.READING, {"i": i}))
    assert _stored(journal_path) == 0
    run.append(payload_of(RecordKind.READING, {"i": FLUSH_THRESHOLD}))
    assert _stored(journal_path) == FLUSH_THRESHOLD


def test_reads_and_close_flush(journal_path: Location, make_clock: MakeClock) -> None:
    journal = Journal(journal_path)
    run = journal.begin_run("run-a", make_clock())
    run.append(payload_of(RecordKind.READING, {"v": 1}))
    assert len(journal.records("run-a")) == 1
    run.append(payload_of(RecordKind.READING, {"v": 2}))
    journal.close()
    assert _stored(journal_path) == 2


def _written(journal: Journal) -> None:
    """Wait until the writer thread has tried every batch handed to it."""
    assert journal._writer is not None
    journal._writer.wait_idle()


def test_append_in_a_loop_tick_is_handed_to_the_writer_after_one_yield(
    journal: Journal, journal_path: Location, make_clock: MakeClock
) -> None:
    run = journal.begin_run("run-a", make_clock())

    async def main() -> None:
        loop = asyncio.get_running_loop()
        with mock.patch.object(loop, "call_soon", wraps=loop.call_soon) as call_soon:

            def flushes_scheduled() -> int:
                calls = call_soon.call_args_list
                return sum(1 for c in calls if c.args[0] == journal._tick_flush)

            for i in range(10):
                run.append(payload_of(RecordKind.READING, {"i": i}))
            assert flushes_scheduled() == 1  # one hand-off per tick, not one per record
            assert _stored(journal_path) == 0 and len(journal._buffer) == 10
            await asyncio.sleep(0)
            assert journal._buffer == []  # handed to the writer thread
            _written(journal)  # committed when its window closes (a few ms)
            assert _stored(journal_path) == 10
            run.append(
                payload_of(RecordKind.READING, {"i": 10})
            )  # a new tick schedules a new hand-off
            assert flushes_scheduled() == 2
        await asyncio.sleep(0)
        _written(journal)
        assert _stored(journal_path) == 11

    asyncio.run(main())


def test_each_event_loop_gets_its_own_tick_flush(
    journal: Journal, journal_path: Location, make_clock: MakeClock
) -> None:
    run = journal.begin_run("run-a", make_clock())
    dying = asyncio.new_event_loop()

    def append_and_stop() -> None:
        run.append(payload_of(RecordKind.READING, {"v": 1}))
        dying.stop()  # the loop ends before its scheduled hand-off runs

    dying.call_soon(append_and_stop)
    dying.run_forever()
    dying.close()
    assert _stored(journal_path) == 0 and len(journal._buffer) == 1

    async def append_and_yield() -> None:
        run.append(payload_of(RecordKind.READING, {"v": 2}))
        await asyncio.sleep(0)
        _written(journal)
        assert _stored(journal_path) == 2  # the new loop got its own hand-off

    asyncio.run(append_and_yield())


def test_failed_flush_raises_and_keeps_the_records(
    journal_path: Location, make_clock: MakeClock
) -> None:
    with Journal(journal_path, timeout_s=0.05) as journal:
        run = journal.begin_run("run-a", make_clock())
        run.append(payload_of(RecordKind.READING, {"v": 1}))
        with _write_lock(journal_path):
            with pytest.raises(JournalError, match="kept in memory"):
                run.append(
                    payload_of(RecordKind.INSTRUMENT_COMMAND, {"method": "start"}), durable=True
                )
            with pytest.raises(JournalError, match="cannot write 2 records"):
                journal.flush()
            run.append(payload_of(RecordKind.READING, {"v": 3}))
        assert _stored(journal_path) == 0
        journal.flush()
        assert _stored(journal_path) == 3
        assert [r.seq for r in journal.records("run-a")] == [0, 1, 2]
        assert verify_run(journal, "run-a").intact


def test_failed_commit_nobody_waits_for_is_logged_and_retried(
    journal_path: Location, make_clock: MakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    async def main(journal: Journal) -> None:
        run = journal.begin_run("run-a", make_clock())
        with _write_lock(journal_path), caplog.at_level(logging.ERROR):
            run.append(payload_of(RecordKind.READING, {"v": 1}))
            await asyncio.sleep(0)
            _written(journal)  # the writer's commit failed: logged, records kept
        assert "cannot write 1 records" in caplog.text and "kept in memory" in caplog.text
        assert _stored(journal_path) == 0
        run.append(payload_of(RecordKind.READING, {"v": 2}))
        await asyncio.sleep(0)
        _written(journal)
        assert _stored(journal_path) == 2

    with Journal(journal_path, timeout_s=0.05) as journal:
        asyncio.run(main(journal))


def test_failed_close_keeps_the_journal_open(journal_path: Location, make_clock: MakeClock) -> None:
    journal = Journal(journal_path, timeout_s=0.05)
    run = journal.begin_run("run-a", make_clock())
    run.append(payload_of(RecordKind.READING, {"v": 1}))
    with _write_lock(journal_path), pytest.raises(JournalError):
        journal.close()
    journal.close()
    assert _stored(journal_path) == 1
