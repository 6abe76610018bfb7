"""The backend seam of issue 15: where a journal is (Location), the connection protocol,
and what the SQLite backend does (today's behaviour, moved)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from cellauto.errors import JournalOpenError
from cellauto.records import Journal
from cellauto.records import backend as db
from cellauto.records.backend import Conn, Location, Lock, open_backend
from cellauto.records.backend.locks import check_order
from cellauto.records.site_store import SiteStore
from cellauto.site.history import reading_journal


def test_a_path_is_an_sqlite_location(tmp_path: Path) -> None:
    for given in (str(tmp_path / "a.db"), tmp_path / "a.db", "relative/b.db", "c.db"):
        location = Location.parse(given)
        assert location.path == Path(given) and location.url is None
        assert not location.is_postgresql
        assert location.sqlite_path() == Path(given)
        assert str(location) == str(Path(given))
    same = Location.parse(tmp_path / "a.db")
    assert Location.parse(same) is same


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://cellauto@db.site.example:5432/cellauto",
        "postgresql://localhost/site?options=-csearch_path%3Dtraining",
        "postgres://db/cellauto",
        "POSTGRESQL://db/cellauto",
        "postgresql:///cellauto?host=/run/postgresql",
    ],
)
def test_a_postgresql_url_is_parsed(url: str) -> None:
    location = Location.parse(url)
    assert location.is_postgresql and location.url == url and location.path is None


def test_messages_never_show_the_password() -> None:
    location = Location.parse("postgresql://qa:s3cret@db:5432/cellauto")
    assert location.describe() == "postgresql://qa:***@db:5432/cellauto"
    assert "s3cret" not in str(location)
    assert db.describe("postgresql://qa@db/cellauto") == "postgresql://qa@db/cellauto"
    with pytest.raises(JournalOpenError) as refused:
        open_backend("postgresql://qa:s3cret@127.0.0.1:1/cellauto").connect(
            create=False, timeout_s=1.0
        )
    assert "s3cret" not in str(refused.value)


def test_a_url_naming_nothing_or_another_scheme_is_refused() -> None:
    with pytest.raises(JournalOpenError, match="names no server or database"):
        Location.parse("postgresql://")
    with pytest.raises(JournalOpenError, match="unknown scheme 'mysql'"):
        Location.parse("mysql://db/cellauto")


def test_a_postgresql_journal_that_cannot_be_reached_is_refused(tmp_path: Path) -> None:
    url = "postgresql://127.0.0.1:1/cellauto"
    assert open_backend(url).name == "postgresql"
    with pytest.raises(JournalOpenError, match="not yet supported"):
        Location.parse(url).sqlite_path()  # what works on the file itself
    for open_it in (lambda: Journal(url), lambda: SiteStore(url)):
        with pytest.raises(JournalOpenError, match="cannot connect to journal"):
            open_it()
    with pytest.raises(JournalOpenError, match="cannot connect"), reading_journal(url):
        pass
    assert list(tmp_path.iterdir()) == []


def test_the_location_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(db.DB_ENV, raising=False)
    assert Location.from_env() == Location(path=Path("cellauto.db"))
    monkeypatch.setenv(db.DB_ENV, str(tmp_path / "site.db"))
    assert Location.from_env() == Location(path=tmp_path / "site.db")
    assert Location.from_env("given.db") == Location(path=Path("given.db"))
    monkeypatch.setenv(db.DB_ENV, "")
    assert Location.from_env() == Location(path=Path("cellauto.db"))


def test_journal_site_store_and_reading_take_a_location(tmp_path: Path) -> None:
    location = Location.parse(tmp_path / "x.db")
    with Journal(location) as journal:
        assert journal.location == location and journal.path == tmp_path / "x.db"
    with SiteStore(location) as store:
        assert store.location == location and store.path == tmp_path / "x.db"
    with reading_journal(location) as conn:
        assert db.has_table(conn, "records") and not db.has_table(conn, "no_such_table")
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            conn.execute("DELETE FROM meta")


def test_sqlite_connection_is_a_conn() -> None:
    conn = sqlite3.connect(":memory:")
    try:
        assert isinstance(conn, Conn)  # and statically: see backend/sqlite.py's check
    finally:
        conn.close()


def test_the_sqlite_backend_begins_as_before(tmp_path: Path) -> None:
    backend = open_backend(tmp_path / "x.db")
    conn = backend.connect(create=True, timeout_s=1.0)
    statements: list[str] = []
    assert isinstance(conn, Conn)
    conn.set_trace_callback(statements.append)
    try:
        db.begin_write(conn, Lock.FENCE, Lock.LEDGER)
        db.insert_records(conn, [("r", 0, "reading", 0.0, 1, "{}", "0" * 64, "1" * 64)])
        conn.execute("COMMIT")
        db.begin_write(conn)
        conn.execute("COMMIT")
        db.set_durable(conn, True)
        db.set_durable(conn, False)
        with db.reading(conn):
            assert conn.execute("SELECT count(*) FROM records").fetchone()[0] == 1
    finally:
        conn.close()
    assert statements[0] == "BEGIN IMMEDIATE"
    assert statements[2:] == [
        "COMMIT",
        "BEGIN",
        "COMMIT",
        "PRAGMA synchronous=FULL",
        "PRAGMA synchronous=NORMAL",
        "PRAGMA query_only=ON",
        "BEGIN",
        "SELECT count(*) FROM records",
        "COMMIT",
        "PRAGMA query_only=OFF",
    ]
    assert backend.sync() in (True, False)
    assert abs(db.server_now_ns() - time.time_ns()) < 10**9


def test_the_sqlite_backend_lists_tables_and_counts_changes(tmp_path: Path) -> None:
    backend = open_backend(tmp_path / "x.db")
    conn = backend.connect(create=True, timeout_s=1.0)
    reader = backend.connect_read_only(query_only=True)
    try:
        assert {"records", "meta", "ledger", "ledger_head", "run_owners"} <= db.tables(conn)
        (sql,) = db.table_sql(conn, ("records",))
        assert sql.startswith("CREATE TABLE records")
        before = db.change_counter(reader)
        conn.execute("INSERT INTO meta (key, value) VALUES ('x', 'y')")
        assert db.change_counter(reader) != before
        with pytest.raises(sqlite3.OperationalError):
            reader.execute("DELETE FROM meta")
    finally:
        reader.close()
        conn.close()


def test_locks_are_asked_in_their_order() -> None:
    check_order((), (Lock.FENCE, Lock.SITE, Lock.MATERIALS, Lock.ASSET, Lock.LEDGER))
    check_order((Lock.SITE,), (Lock.LEDGER,))
    with pytest.raises(RuntimeError, match="LEDGER"):
        check_order((), (Lock.LEDGER, Lock.FENCE))
    with pytest.raises(RuntimeError, match="asked after"):
        check_order((Lock.MATERIALS,), (Lock.SITE,))
