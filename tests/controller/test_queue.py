"""The run queue: ``cellauto run --queue``, ``cellauto queue list|cancel``, taking rows."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from cellauto.cli import main
from cellauto.controller import queue
from cellauto.errors import JournalError
from cellauto.records import Journal, _owners
from cellauto.records import backend as db
from cellauto.records.backend import Location
from cellauto.records.backend.notify import open_feed
from cellauto.records.site_chain import read_site_record
from cellauto.records.site_payloads import RunSubmissionCancelled, RunSubmitted
from cellauto.records.site_store import SiteStore
from cellauto.records.verify import verify_journal

pytestmark = pytest.mark.postgresql

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "protocols" / "demo_expansion.py"


def _queue(url: str, *extra: str, capsys: pytest.CaptureFixture[str]) -> str:
    code = main(["run", str(DEMO), "--queue", "--db", url, "--line-name", "site", *extra])
    out = capsys.readouterr().out
    assert code == 0, out
    return out.splitlines()[0].removeprefix("run ")


def test_a_queued_run_is_a_site_record_projected_to_a_queue_row(
    pg_location: Location, capsys: pytest.CaptureFixture[str]
) -> None:
    url = pg_location.describe()
    SiteStore(url, create=True).close()
    feed = open_feed(url, [queue.QUEUE_CHANNEL])
    try:
        run_id = _queue(url, "--param", "culture_days=3", "--priority", "5", capsys=capsys)
        assert feed.wait(10.0) == {queue.QUEUE_CHANNEL}
        assert feed.payloads == [(queue.QUEUE_CHANNEL, run_id)]
    finally:
        feed.close()
    with SiteStore(url) as store, store.reading() as conn:
        [row] = queue.queue_rows(conn)
        source = conn.execute(
            "SELECT source_seq FROM run_queue WHERE run_id = ?", (run_id,)
        ).fetchone()
        submitted = read_site_record(conn, int(source[0]))
    assert (row.run_id, row.protocol, row.line, row.priority, row.status) == (
        run_id,
        "demo-expansion",
        "site",
        5,
        "queued",
    )
    assert row.params["culture_days"] == 3
    assert isinstance(submitted.payload, RunSubmitted)
    assert submitted.payload.run_id == run_id
    assert submitted.payload.parameters == row.params
    assert submitted.payload.protocol_source_sha256 == row.source_sha256
    with Journal(pg_location) as journal:
        assert verify_journal(journal).intact


def test_bad_parameters_are_refused_before_anything_is_written(
    pg_location: Location, capsys: pytest.CaptureFixture[str]
) -> None:
    url = pg_location.describe()
    SiteStore(url, create=True).close()
    code = main(["run", str(DEMO), "--queue", "--db", url, "--param", "culture_days=99"])
    assert code == 2
    assert "culture_days" in capsys.readouterr().err
    with SiteStore(url) as store, store.reading() as conn:
        assert queue.queue_rows(conn, statuses=()) == []
        assert conn.execute("SELECT count(*) FROM site_records").fetchone()[0] == 0


def test_the_queue_refuses_an_sqlite_journal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", str(DEMO), "--queue", "--db", str(tmp_path / "j.db")])
    assert code == 2
    assert "needs a PostgreSQL journal" in capsys.readouterr().err
    assert not (tmp_path / "j.db").exists()


def test_two_controllers_never_take_one_row_and_take_by_priority(
    pg_location: Location, capsys: pytest.CaptureFixture[str]
) -> None:
    url = pg_location.describe()
    SiteStore(url, create=True).close()
    low = _queue(url, capsys=capsys)
    high = _queue(url, "--priority", "9", capsys=capsys)
    other_line = main(["run", str(DEMO), "--queue", "--db", url, "--line-name", "other"])
    assert other_line == 0
    capsys.readouterr()
    first = db.open_backend(url).connect(create=False, timeout_s=5.0)
    second = db.open_backend(url).connect(create=False, timeout_s=5.0)
    try:
        # the first holds its row locked in an open transaction: the second skips it
        db.begin_write(first)
        [held] = first.execute(
            "SELECT run_id FROM run_queue WHERE status = 'queued' AND line = 'site'"
            " ORDER BY priority DESC, queue_seq LIMIT 1 FOR UPDATE SKIP LOCKED"
        ).fetchall()
        assert held[0] == high
        taken = queue.take(second, line="site", controller="b", free=5)
        assert [entry.run_id for entry in taken] == [low]
        first.execute("ROLLBACK")
        again = queue.take(first, line="site", controller="a", free=5)
        assert [entry.run_id for entry in again] == [high]
        assert queue.take(first, line="site", controller="a", free=5) == []
    finally:
        first.close()
        second.close()


def test_a_person_cancels_a_queued_run_not_a_taken_one(
    pg_location: Location, capsys: pytest.CaptureFixture[str]
) -> None:
    url = pg_location.describe()
    SiteStore(url, create=True).close()
    keep = _queue(url, capsys=capsys)
    drop = _queue(url, capsys=capsys)
    assert main(["queue", "cancel", drop, "--db", url, "--reason", "donor withdrew"]) == 0
    assert "cancelled by" in capsys.readouterr().out
    conn = db.open_backend(url).connect(create=False, timeout_s=5.0)
    try:
        queue.take(conn, line="site", controller="a", free=1)
        assert queue.entry(conn, keep).status == "taken"  # type: ignore[union-attr]
    finally:
        conn.close()
    assert main(["queue", "cancel", keep, "--db", url, "--reason", "late"]) == 1
    assert "is taken by controller a" in capsys.readouterr().err
    assert main(["queue", "list", "--db", url, "--all"]) == 0
    listing = capsys.readouterr().out
    assert f"{drop} demo-expansion@1.0.0 line site priority 0 cancelled" in listing
    assert "donor withdrew" in listing
    assert main(["queue", "list", "--db", url]) == 0
    assert drop not in capsys.readouterr().out
    with SiteStore(url) as store, store.reading() as conn:
        kinds = [kind for (kind,) in conn.execute("SELECT kind FROM site_records ORDER BY seq")]
        last = read_site_record(conn, len(kinds) - 1)
    assert kinds == ["run_submitted", "run_submitted", "run_submission_cancelled"]
    assert isinstance(last.payload, RunSubmissionCancelled)
    assert (last.payload.run_id, last.payload.reason) == (drop, "donor withdrew")


def test_a_taken_row_goes_started_in_the_transaction_that_claims_its_run(
    pg_location: Location, capsys: pytest.CaptureFixture[str]
) -> None:
    url = pg_location.describe()
    SiteStore(url, create=True).close()
    run_id = _queue(url, capsys=capsys)
    conn = db.open_backend(url).connect(create=False, timeout_s=5.0)
    try:
        [entry] = queue.take(conn, line="site", controller="a", free=1)
        with Journal(url, create=False) as journal:
            # the row is another controller's: the claim is rolled back, nothing written
            other = functools.partial(queue.mark_started, run_id=run_id, controller="b")
            with (
                _owners.at_claim(run_id, other),
                pytest.raises(JournalError, match="not taken by controller b"),
            ):
                journal.begin_run(run_id, lambda: 0.0)
            assert _owners.owner_of(conn, run_id) is None
            assert queue.entry(conn, run_id).status == "taken"  # type: ignore[union-attr]
            mine = functools.partial(queue.mark_started, run_id=run_id, controller="a")
            with _owners.at_claim(run_id, mine):
                journal.begin_run(run_id, lambda: 0.0)
            assert queue.entry(conn, run_id).status == "started"  # type: ignore[union-attr]
            assert _owners.owner_of(conn, run_id) is not None
        assert entry.run_id == run_id
    finally:
        conn.close()


def test_a_row_not_admitted_stays_queued_and_one_behind_it_is_taken(
    pg_location: Location, capsys: pytest.CaptureFixture[str]
) -> None:
    """``admit`` (a free unit bound, or not) decides in the taking transaction; a row it
    refuses stays queued, and rows behind it are looked at within ``free``."""
    url = pg_location.describe()
    SiteStore(url, create=True).close()
    first = _queue(url, "--priority", "9", capsys=capsys)
    second = _queue(url, "--priority", "5", capsys=capsys)
    third = _queue(url, capsys=capsys)
    asked: list[str] = []

    def admit(conn: db.Conn, entry: queue.QueueEntry) -> bool:
        assert conn.in_transaction  # the taking transaction
        asked.append(entry.run_id)
        return entry.run_id != first

    conn = db.open_backend(url).connect(create=False, timeout_s=5.0)
    try:
        taken = queue.take(conn, line="site", controller="a", free=1, admit=admit)
        assert [entry.run_id for entry in taken] == [second]
        assert asked == [first, second]  # none asked once `free` were taken
        assert queue.entry(conn, first).status == "queued"  # type: ignore[union-attr]
        assert queue.entry(conn, third).status == "queued"  # type: ignore[union-attr]
        assert [e.run_id for e in queue.take(conn, line="site", controller="a", free=5)] == [
            first,
            third,
        ]
    finally:
        conn.close()
