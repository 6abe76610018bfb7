"""The web app's change source on a PostgreSQL journal (issue 15, design §4.6): a writer's
commit is heard (LISTEN) and its rows read by run and seq, so two controllers committing
out of id order lose nothing; a dropped listener reads everything since; the site chain
moving is heard; and the hub keeps the line overview live on such a journal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cellauto.clock import awaiting_outside
from cellauto.records import Journal
from cellauto.records import backend as db
from cellauto.records.backend import Location
from cellauto.records.backend.notify import announce_changes, change_payloads, parse_changes
from cellauto.web import changes_pg
from cellauto.web.changes import Change, SqliteChanges, change_source_for
from cellauto.web.changes_pg import PgChanges
from cellauto.web.hub import ChangeHub
from tests.web.harness import DEADLINE_S
from tests.web.test_changes import Clock, alarm, begin, reading

pytestmark = pytest.mark.postgresql

INSERT = (
    "INSERT INTO records (run_id, seq, kind, process_time_s, wall_time_ns, body, prev_hash,"
    " hash) VALUES (?, ?, 'reading', 0.0, 0, '{}', 'p', 'h') RETURNING id"
)


def until_rows(source: PgChanges, count: int) -> list[Change]:
    """Changes until ``count`` rows came, or fail after the hang deadline."""
    seen: list[Change] = []
    while sum(len(c.rows) for c in seen) < count:
        found = source.wait(DEADLINE_S)
        assert found is not None, "no change seen within the deadline"
        seen.append(found)
    return seen


def writer(location: Location) -> db.Conn:
    return db.open_backend(location).connect(create=True, timeout_s=5.0)


def test_the_source_is_picked_by_location(tmp_path: Path, pg_location: Location) -> None:
    Journal(tmp_path / "line.db").close()
    assert isinstance(change_source_for(tmp_path / "line.db"), SqliteChanges)
    source = change_source_for(pg_location)
    assert isinstance(source, PgChanges)
    source.close()


def test_payloads_are_split_under_the_limit_and_read_back() -> None:
    spans = [(f"run-{i:04d}-{'x' * 40}", i, i + 9) for i in range(400)]
    payloads = change_payloads(spans, site=True)
    assert len(payloads) > 1 and all(len(p.encode()) < 7_900 for p in payloads)
    read = [parse_changes(p) for p in payloads]
    assert [s for r in read if r for s in r[0]] == spans
    assert [bool(r and r[1]) for r in read] == [False] * (len(read) - 1) + [True]
    assert parse_changes("not json") is None


def test_a_journals_records_are_heard_with_overview_bodies_only(pg_location: Location) -> None:
    Journal(pg_location).close()
    source = PgChanges(pg_location)
    try:
        assert source.start().rowid == 0
        assert source.wait(0) is None
        with Journal(pg_location) as journal:
            run = begin(journal, "run-a", Clock(), coi="W123426A1B2C3")
            run.append(reading(), durable=True)
            run.append(alarm("pH high"), durable=True)
        rows = [r for c in until_rows(source, 4) for r in c.rows]
        assert [(r.run_id, r.seq, r.kind) for r in rows] == [
            ("run-a", 0, "run_started"),
            ("run-a", 1, "state_change"),
            ("run-a", 2, "reading"),
            ("run-a", 3, "alarm"),
        ]
        assert rows[0].body is not None and "W123426A1B2C3" in rows[0].body
        assert rows[2].body is None and rows[3].body is not None
        assert source.after == {"run-a": 3}
    finally:
        source.close()


def test_two_writers_committing_out_of_id_order_lose_no_row(pg_location: Location) -> None:
    """§4.6: A draws the lower id, B the higher one and commits first. A reader by id
    would see B's row, advance past A's id and never read A's; PgChanges reads both."""
    Journal(pg_location).close()
    source = PgChanges(pg_location)
    a, b = writer(pg_location), writer(pg_location)
    try:
        source.start()
        db.begin_write(a)
        (a_id,) = a.execute(INSERT, ("run-a", 0)).fetchone()
        db.begin_write(b)
        (b_id,) = b.execute(INSERT, ("run-b", 0)).fetchone()
        assert a_id < b_id
        announce_changes(b, [("run-b", 0, 0)])
        b.execute("COMMIT")
        first = until_rows(source, 1)
        assert [(r.run_id, r.seq) for c in first for r in c.rows] == [("run-b", 0)]
        reader = db.open_backend(pg_location).connect_read_only(query_only=True)
        by_id_position = max(r.rowid for c in first for r in c.rows)  # issue 13's reader
        announce_changes(a, [("run-a", 0, 0)])
        a.execute("COMMIT")
        after_id = reader.execute("SELECT id FROM records WHERE id > ?", (by_id_position,))
        assert after_id.fetchall() == []  # by id: A's row (a lower id) is never read
        reader.close()
        second = until_rows(source, 1)
        assert [(r.run_id, r.seq, r.rowid) for c in second for r in c.rows] == [("run-a", 0, a_id)]
        assert source.after == {"run-a": 0, "run-b": 0}
    finally:
        a.close()
        b.close()
        source.close()


def test_a_dropped_listener_reads_everything_since(pg_location: Location) -> None:
    Journal(pg_location).close()
    source = PgChanges(pg_location)
    other = writer(pg_location)
    try:
        source.start()
        feed = source._listening()
        pid = feed._conn.info.backend_pid  # type: ignore[attr-defined]
        other.execute("SELECT pg_terminate_backend(?)", (pid,))
        db.begin_write(other)  # committed while nobody listens, notified to nobody
        other.execute(INSERT, ("run-gap", 0))
        other.execute(INSERT, ("run-gap", 1))
        other.execute("COMMIT")
        rows = [r for c in until_rows(source, 2) for r in c.rows]
        assert [(r.run_id, r.seq) for r in rows] == [("run-gap", 0), ("run-gap", 1)]
        assert source.wait(0) is None  # nothing twice
    finally:
        other.close()
        source.close()


def test_a_lost_notification_costs_at_most_the_fallback_period(pg_location: Location) -> None:
    """A commit whose notification never arrives (dropped on purpose: written without
    one) is read by the next fallback, for a run already followed and a new one alike."""
    Journal(pg_location).close()
    other = writer(pg_location)
    try:
        db.begin_write(other)
        other.execute(INSERT, ("run-known", 0))
        announce_changes(other, [("run-known", 0, 0)])
        other.execute("COMMIT")
        source = PgChanges(pg_location, fallback_s=0.0)  # every quiet slice falls back
        try:
            source.start()
            assert source.after == {"run-known": 0}
            db.begin_write(other)  # no announce_changes: the notification is lost
            other.execute(INSERT, ("run-known", 1))
            other.execute(INSERT, ("run-new", 0))
            other.execute("COMMIT")
            change = source.wait(DEADLINE_S)
            assert change is not None
            assert [(r.run_id, r.seq) for r in change.rows] == [("run-known", 1), ("run-new", 0)]
            assert source.after == {"run-known": 1, "run-new": 0}
            again = source.wait(DEADLINE_S)
            assert again is not None and again.rows == ()  # nothing twice
        finally:
            source.close()
    finally:
        other.close()


def test_every_runs_head_is_read_by_the_skip_scan(pg_location: Location) -> None:
    Journal(pg_location).close()
    other = writer(pg_location)
    try:
        db.begin_write(other)
        for run_id, seqs in (("b", 3), ("a", 2), ("c", 1)):
            for seq in range(seqs):
                other.execute(INSERT, (run_id, seq))
        other.execute("COMMIT")
        assert sorted(other.execute(changes_pg._HEADS).fetchall()) == [
            ("a", 1),
            ("b", 2),
            ("c", 0),
        ]
        other.execute("DELETE FROM records")
        assert other.execute(changes_pg._HEADS).fetchall() == []
    finally:
        other.close()


def test_a_burst_is_read_in_pages(pg_location: Location, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(changes_pg, "PAGE_ROWS", 3)
    Journal(pg_location).close()
    source = PgChanges(pg_location)
    try:
        source.start()
        with Journal(pg_location) as journal:
            run = begin(journal, "run-b", Clock())
            for value in range(6):
                run.append(reading(value))
            run.append(reading(), durable=True)
        rows = [r for c in until_rows(source, 9) for r in c.rows]
        assert [r.seq for r in rows] == list(range(9))
    finally:
        source.close()


def test_the_site_chain_moving_is_heard(pg_location: Location) -> None:
    from cellauto.site.accounts import bootstrap
    from cellauto.site.store import open_site_store
    from tests.site.chain import POLICY, TERMINAL
    from tests.site.conftest import ROOT_PASSWORD

    Journal(pg_location).close()
    source = PgChanges(pg_location, fallback_s=DEADLINE_S * 10)  # heard, not looked up
    try:
        assert source.start().site_seq is None
        with open_site_store(pg_location) as store:
            bootstrap(store, "root", "Rita Admin", ROOT_PASSWORD, policy=POLICY, terminal=TERMINAL)
        change = source.wait(DEADLINE_S)
        assert change is not None and change.rows == ()
        assert change.site_seq is not None and change.site_seq >= 0
    finally:
        source.close()


def test_a_writer_commit_notifies_each_runs_span(pg_location: Location) -> None:
    from cellauto.records.backend.notify import open_feed

    Journal(pg_location).close()
    feed = open_feed(pg_location, ["cellauto_changes"])
    try:
        with Journal(pg_location) as journal:
            run = begin(journal, "run-n", Clock())
            run.append(reading(), durable=True)
        spans: list[list[object]] = []
        while not spans or spans[-1][2] != 2:
            assert feed.wait(DEADLINE_S) is not None
            spans += [s for _, p in feed.payloads for s in json.loads(p)["runs"]]
        assert spans[0][:2] == ["run-n", 0] and all(s[0] == "run-n" for s in spans)
        assert [s[1] for s in spans[1:]] == [s[2] + 1 for s in spans[:-1]]  # no gap
    finally:
        feed.close()


@pytest.mark.anyio
async def test_the_hub_follows_a_postgresql_journal(pg_location: Location) -> None:
    with Journal(pg_location) as journal:
        begin(journal, "run-old", Clock())
    hub = ChangeHub(pg_location, poll_s=0.01)
    await hub.start()
    try:
        assert "run-old" in hub.model.runs  # the startup scan
        sub = hub.subscribe(frozenset({"run:run-new"}))
        with Journal(pg_location) as journal:
            run = begin(journal, "run-new", Clock())
            run.append(alarm("pH high"), durable=True)
        while True:  # until the alarm is in the model (events may come before it)
            # the hub's poller thread works for us outside the loop: on the tests' virtual
            # loop, time must follow real time meanwhile, not jump past the deadline
            with awaiting_outside():
                event = await sub.next(DEADLINE_S)
            assert event is not None, "no event within the deadline"
            row = hub.model.runs.get("run-new")
            if row is not None and row.alarms:
                break
        assert row.state == "Running" and [m for _, m in row.alarms.values()] == ["pH high"]
        assert hub.failure is None
    finally:
        await hub.stop()
