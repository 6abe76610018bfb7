"""The journal on the backend of the pass (``--db-backend``): appends, seals, anchors, the
site chain and verify, and tampering found, through ``db_location`` and ``raw_db``.

On the SQLite pass these run on a file; with ``--db-backend=postgresql`` on the session's
server: the hash chain, canonical bodies, the signed ledger and verify are the same code
reading the same columns (design of issue 15, decision 2)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

import pytest

from cellauto.errors import FencedError, JournalError
from cellauto.records import AnchorPolicy, Journal, RecordKind, verify_journal, verify_run
from cellauto.records.backend import Conn, Location
from cellauto.records.site_store import SiteStore
from tests.records.factory import payload_of
from tests.records.site_factory import policy

RawDb = Callable[[Location], Conn]


def _clock() -> Callable[[], float]:
    ticks = itertools.count()
    return lambda: 1_767_225_600.0 + next(ticks) * 0.5


def _fill(location: Location, *, anchors: AnchorPolicy | None = None) -> None:
    with Journal(location, anchors=anchors) as journal:
        sealed = journal.begin_run("run-sealed", _clock())
        sealed.append(
            payload_of(RecordKind.RUN_STARTED, {"protocol_name": "p", "protocol_version": "1"})
        )
        for i in range(10):
            sealed.append(payload_of(RecordKind.READING, {"i": i, "v": 37.0 + i / 10}))
        sealed.append(payload_of(RecordKind.RUN_ENDED, {"exit_status": "complete"}))
        sealed.seal()
        running = journal.begin_run("run-open", _clock())
        for i in range(10):
            running.append(payload_of(RecordKind.READING, {"i": i, "text": "é ✓ 50%"}))
            journal.flush()  # one commit each: an anchor every 3 records


def test_a_journal_appends_seals_anchors_and_verifies(db_location: Location) -> None:
    _fill(db_location, anchors=AnchorPolicy(every_records=3))
    with Journal(db_location, create=False) as journal:
        assert sorted(s.run_id for s in journal.runs()) == ["run-open", "run-sealed"]
        records = journal.records("run-open")
        assert [r.seq for r in records] == list(range(10))
        assert records[3].payload.model_dump()["value"] == {"i": 3, "text": "é ✓ 50%"}
        report = verify_journal(journal)
        assert report.intact, report
        by_run = {r.run_id: r for r in report.runs}
        assert by_run["run-sealed"].sealed and not by_run["run-open"].sealed
        assert len(report.ledger.marks["run-open"].anchors) >= 3


def test_a_run_resumes_from_another_journal_object(db_location: Location) -> None:
    _fill(db_location)
    with Journal(db_location, create=False) as journal:
        resumed = journal.resume_run("run-open", _clock())
        assert resumed.next_seq == 10
        resumed.append(payload_of(RecordKind.RUN_ENDED, {"exit_status": "complete"}))
        resumed.seal()
        with pytest.raises(JournalError, match="sealed"):
            journal.resume_run("run-open", _clock())
        assert verify_run(journal, "run-open").intact


def test_durable_appends_in_a_loop(db_location: Location) -> None:
    async def main() -> None:
        with Journal(db_location) as journal:
            run = journal.begin_run("run-d", _clock())
            await asyncio.gather(
                *(
                    run.append_durable(
                        payload_of(RecordKind.INSTRUMENT_COMMAND, {"method": f"m{n}"})
                    )
                    for n in range(5)
                )
            )
            assert len(journal.records("run-d")) == 5

    asyncio.run(main())


def test_a_stale_owner_is_fenced_by_a_takeover(db_location: Location) -> None:
    old = Journal(db_location, owner_stale_s=0.001)
    try:
        run = old.begin_run("run-t", _clock())
        run.append(payload_of(RecordKind.READING, {"i": 0}))
        old.flush()
        with Journal(db_location, create=False, owner_stale_s=0.001) as new:
            taken = new.resume_run("run-t", _clock())
            taken.append(payload_of(RecordKind.READING, {"i": 1}))
            new.flush()
            run.append(payload_of(RecordKind.READING, {"i": 99}))
            with pytest.raises(FencedError):
                old.flush()
                run.append(payload_of(RecordKind.READING, {"i": 100}))
            assert [r.payload.model_dump()["value"]["i"] for r in new.records("run-t")] == [
                0,
                1,
            ]
            assert verify_run(new, "run-t").intact
    finally:
        old.close()


def test_the_site_chain_is_written_and_verified(db_location: Location) -> None:
    with SiteStore(db_location, create=True) as store, store.transaction() as tx:
        tx.append(policy())
    with Journal(db_location, create=False) as journal:
        report = verify_journal(journal)
    assert report.intact, report
    assert report.site.records == 1


@pytest.mark.parametrize(
    ("tamper", "broken", "reason"),
    [
        (
            "UPDATE records SET body = replace(body, '37.5', '38.5')"
            " WHERE run_id = 'run-sealed' AND seq = 6",
            6,
            "hash",
        ),
        ("DELETE FROM records WHERE run_id = 'run-sealed' AND seq = 4", 4, ""),
        ("UPDATE records SET kind = 'alarm' WHERE run_id = 'run-sealed' AND seq = 2", 2, ""),
    ],
    ids=["edited body", "deleted middle", "kind edited"],
)
def test_tampering_is_found(
    db_location: Location, raw_db: RawDb, tamper: str, broken: int, reason: str
) -> None:
    _fill(db_location)
    conn = raw_db(db_location)
    try:
        assert conn.execute(tamper).rowcount == 1
    finally:
        conn.close()
    with Journal(db_location, create=False) as journal:
        report = verify_run(journal, "run-sealed")
        assert not report.intact and report.first_broken_seq == broken, report
        assert reason in (report.reason or "")
        assert verify_run(journal, "run-open").intact
