"""Change feeds: a commit is noticed, a rollback is not; a dropped listener reconnects and
reports every channel (nothing lost in the gap)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cellauto.records import Journal
from cellauto.records import backend as db
from cellauto.records.backend import Location
from cellauto.records.backend.notify import ListenFeed, notify, open_feed
from cellauto.records.backend.pg import PgConn


def _writer(location: Location) -> db.Conn:
    return db.open_backend(location).connect(create=True, timeout_s=5.0)


@pytest.mark.postgresql
def test_a_notification_arrives_at_commit_only(pg_location: Location) -> None:
    writer = _writer(pg_location)
    feed = open_feed(pg_location, ["cellauto_queue", "cellauto_assets"])
    try:
        assert isinstance(feed, ListenFeed)
        db.begin_write(writer)
        notify(writer, "cellauto_queue", "7")
        writer.execute("ROLLBACK")
        assert feed.wait(0.05) is None  # rolled back: never sent
        db.begin_write(writer)
        notify(writer, "cellauto_queue", "8")
        notify(writer, "cellauto_assets", "counter-1 3")
        notify(writer, "cellauto_requests", "not listened to")
        writer.execute("COMMIT")
        got = feed.wait(5.0)
        while got is not None and len(feed.payloads) < 2:  # the second may come apart
            more = feed.wait(5.0)
            assert more is not None
            got |= more
        assert got == {"cellauto_queue", "cellauto_assets"}
    finally:
        feed.close()
        writer.close()


@pytest.mark.postgresql
def test_a_dropped_listener_reconnects_and_reports_every_channel(pg_location: Location) -> None:
    writer = _writer(pg_location)
    feed = open_feed(pg_location, ["cellauto_queue"])
    try:
        assert isinstance(feed, ListenFeed) and isinstance(writer, PgConn)
        assert feed._conn is not None
        pid = feed._conn.info.backend_pid
        writer.execute("SELECT pg_terminate_backend(?)", (pid,))
        assert feed.wait(5.0) == {"cellauto_queue"}  # anything may have changed
        assert feed.reconnects == 1
        notify(writer, "cellauto_queue", "after")  # autocommit: sent at once
        assert feed.wait(5.0) == {"cellauto_queue"}
        assert feed.payloads == [("cellauto_queue", "after")]
    finally:
        feed.close()
        writer.close()


@pytest.mark.postgresql
def test_a_journal_hears_only_its_own_schema(pg_location_factory: object) -> None:
    ours, theirs = pg_location_factory(), pg_location_factory()  # type: ignore[operator]
    other = _writer(theirs)
    writer = _writer(ours)
    feed = open_feed(ours, ["cellauto_queue"])
    try:
        notify(other, "cellauto_queue", "theirs")
        notify(writer, "cellauto_queue", "ours")
        assert feed.wait(5.0) == {"cellauto_queue"}
        assert feed.payloads == [("cellauto_queue", "ours")]
    finally:
        feed.close()
        writer.close()
        other.close()


def test_on_sqlite_a_commit_of_another_connection_is_noticed(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    Journal(path).close()
    feed = open_feed(path, poll_s=0.01)
    writer = _writer(Location.parse(path))
    try:
        assert feed.wait(0.02) is None
        db.begin_write(writer)
        notify(writer, "cellauto_requests", "r1")  # nothing to send: polled
        writer.execute("INSERT INTO meta (key, value) VALUES ('k', 'v')")
        writer.execute("COMMIT")
        assert feed.wait(5.0) == set(feed.channels)
        assert feed.wait(0.02) is None
    finally:
        feed.close()
        writer.close()


def test_unknown_channels_and_oversized_payloads_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    Journal(path).close()
    with pytest.raises(ValueError, match="unknown change channel"):
        open_feed(path, ["cellauto_nothing"])
    writer = _writer(Location.parse(path))
    try:
        with pytest.raises(ValueError, match="unknown change channel"):
            notify(writer, "nothing")
        with pytest.raises(ValueError, match="split it"):
            notify(writer, "cellauto_changes", "x" * 8_000)
    finally:
        writer.close()


def test_a_commits_rows_give_each_runs_first_and_last_seq() -> None:
    from cellauto.records.backend.notify import run_spans

    rows = [("b", 4, "x"), ("a", 0, "x"), ("b", 5, "x"), ("a", 1, "x"), ("b", 6, "x")]
    assert run_spans(rows) == [("b", 4, 6), ("a", 0, 1)]
    assert run_spans([]) == []


def test_announcing_changes_on_sqlite_sends_nothing(tmp_path: Path) -> None:
    from cellauto.records.backend.notify import announce_changes

    Journal(tmp_path / "j.db").close()
    conn = db.open_backend(tmp_path / "j.db").connect(create=False, timeout_s=1.0)
    try:
        announce_changes(conn, [("a", 0, 1)], site=True)  # no error, no statement
        assert not conn.in_transaction
    finally:
        conn.close()
