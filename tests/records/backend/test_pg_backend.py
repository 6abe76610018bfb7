"""The PostgreSQL backend on a real server: the connection, errors, locks, durability,
the records insert, the server clock, the pool (design of issue 15, §2)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator

import pytest

from cellauto.errors import JournalNotFoundError, JournalOpenError
from cellauto.records import backend as db
from cellauto.records.backend import Location, Lock
from cellauto.records.backend.pg import PgBackend, PgConn, split_url, translate
from cellauto.testing_pg import PgServer, drop_schema

pytestmark = pytest.mark.postgresql


@pytest.fixture
def conn(pg_location: Location) -> Iterator[PgConn]:
    assert pg_location.url is not None
    opened = PgBackend(pg_location.url).connect(create=True, timeout_s=5.0)
    try:
        yield opened
    finally:
        if opened.in_transaction:
            opened.execute("ROLLBACK")
        opened.close()


def _other(location: Location, timeout_s: float = 5.0) -> PgConn:
    assert location.url is not None
    return PgBackend(location.url).connect(create=False, timeout_s=timeout_s)


def test_urls_name_their_schema() -> None:
    assert split_url("postgresql://db/site#training")[1] == "training"
    assert split_url("postgres://db/site?options=-csearch_path%3Dqa")[1] == "qa"
    assert split_url("postgresql://db/site")[1] == "cellauto"
    assert split_url("postgres://u:p@db/site#x")[0] == "postgresql://u:p@db/site"
    with pytest.raises(JournalOpenError, match="schema name"):
        split_url("postgresql://db/site#bad;name")


def test_placeholders_are_translated_outside_quotes_only() -> None:
    assert translate("SELECT ? WHERE a = '?' AND b = ?") == "SELECT %s WHERE a = '?' AND b = %s"
    assert translate("SELECT '%' || ?") == "SELECT '%%' || %s"


def test_the_connection_speaks_the_sql_of_cellauto(conn: PgConn) -> None:
    conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)", ("k", "50%"))
    assert conn.execute("SELECT value FROM meta WHERE key = ?", ("k",)).fetchone() == ("50%",)
    assert conn.execute("SELECT value FROM meta WHERE value LIKE '50%'").fetchall() == [("50%",)]
    insert = "INSERT INTO meta (key, value) VALUES (?, ?)"
    cursor = conn.executemany(insert, [("a", "1"), ("b", "2")])
    assert cursor.rowcount == 2
    assert conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", []).rowcount <= 0
    # a bool is stored as SQLite stores it, sums are ints again, not Decimals
    conn.execute("INSERT INTO lot_uses VALUES ('r', 'u', 'l', 5, 1, ?)", (True,))
    row = conn.execute("SELECT voided, sum(quantity_milli) FROM lot_uses GROUP BY voided")
    assert row.fetchone() == (1, 5)
    assert isinstance(conn, db.Conn) and db.is_postgresql(conn)
    assert not conn.in_transaction
    conn.execute("BEGIN")
    assert conn.in_transaction
    conn.execute("ROLLBACK")


def test_errors_are_the_sqlite3_classes_the_code_catches(conn: PgConn) -> None:
    conn.execute("INSERT INTO meta (key, value) VALUES ('x', '1')")
    with pytest.raises(sqlite3.IntegrityError) as caught:
        conn.execute("INSERT INTO meta (key, value) VALUES ('x', '2')")
    assert caught.value.sqlstate == "23505"  # type: ignore[attr-defined]
    assert type(caught.value.__cause__).__name__ == "UniqueViolation"
    with pytest.raises(sqlite3.OperationalError, match="nothing_here"):
        conn.execute("SELECT * FROM nothing_here")
    with pytest.raises(db.DbError):
        conn.execute("SELEKT 1")


def test_the_schema_is_made_once_and_a_missing_journal_is_not_created(
    pg_location: Location, pg_server: PgServer
) -> None:
    location = pg_location
    assert location.url is not None
    drop_schema(pg_server.url, location.url.rsplit("#", 1)[1])  # no journal there
    with pytest.raises(JournalNotFoundError, match="no journal at"):
        PgBackend(location.url).connect(create=False, timeout_s=5.0)
    first = PgBackend(location.url).connect(create=True, timeout_s=5.0)
    try:
        assert {"records", "ledger", "meta", "site_records", "records_alarms"} <= db.tables(first)
        assert db.has_table(first, "alarm_acks") and not db.has_table(first, "nothing")
        version = first.execute("SELECT value FROM meta WHERE key = 'schema_version'")
        assert version.fetchall() == [(str(db_schema_version()),)]
    finally:
        first.close()


def db_schema_version() -> int:
    from cellauto.records._schema import SCHEMA_VERSION

    return SCHEMA_VERSION


def test_a_newer_schema_is_refused_naming_both_versions(pg_location: Location) -> None:
    conn = _make(pg_location)
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.close()
    with pytest.raises(JournalOpenError, match=r"schema version 99.*reads versions.*newer"):
        _other(pg_location)


def _make(location: Location) -> PgConn:
    assert location.url is not None
    return PgBackend(location.url).connect(create=True, timeout_s=5.0)


def test_write_locks_exclude_each_other_and_shared_fence_does_not(pg_location: Location) -> None:
    a, b = _make(pg_location), _other(pg_location, timeout_s=0.2)
    try:
        db.begin_write(a, Lock.FENCE, Lock.LEDGER, shared=(Lock.FENCE,))
        db.begin_write(b, Lock.FENCE, shared=(Lock.FENCE,))  # shared with shared: granted
        b.execute("ROLLBACK")
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            db.begin_write(b, Lock.FENCE)  # exclusive against a shared holder
        b.execute("ROLLBACK")
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            db.begin_write(b, Lock.LEDGER)
        b.execute("ROLLBACK")
        a.execute("COMMIT")  # transaction-scoped: released by the commit
        db.begin_write(b, Lock.FENCE, Lock.LEDGER)
        b.execute("COMMIT")
    finally:
        a.close()
        b.close()


def test_locks_are_taken_in_their_order_only(conn: PgConn) -> None:
    with pytest.raises(RuntimeError, match="in the order"):
        db.begin_write(conn, Lock.LEDGER, Lock.SITE)
    db.begin_write(conn, Lock.SITE)
    db.acquire(conn, Lock.LEDGER)
    with pytest.raises(RuntimeError, match="MATERIALS asked after LEDGER"):
        db.acquire(conn, Lock.MATERIALS)
    conn.execute("ROLLBACK")


def test_a_waiting_lock_is_granted_when_the_holder_commits(pg_location: Location) -> None:
    a, b = _make(pg_location), _other(pg_location)
    got = threading.Event()
    try:
        db.begin_write(a, Lock.SITE)

        def wait() -> None:
            db.begin_write(b, Lock.SITE)
            got.set()
            b.execute("COMMIT")

        thread = threading.Thread(target=wait)
        thread.start()
        # b waits on the lock until a commits (the server's view: a lock wait)
        waiting = a.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        )
        while waiting.fetchone() == (0,) and thread.is_alive():
            waiting = a.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            )
        assert not got.is_set()
        a.execute("COMMIT")
        thread.join()
        assert got.is_set()
    finally:
        a.close()
        b.close()


def test_durability_maps_to_synchronous_commit(conn: PgConn) -> None:
    show = "SELECT current_setting('synchronous_commit')"
    assert conn.execute(show).fetchone() == ("off",)  # the analogue of synchronous=NORMAL
    db.set_durable(conn, True)
    assert conn.execute(show).fetchone() == ("on",)
    db.set_durable(conn, False)
    assert conn.execute(show).fetchone() == ("off",)
    assert db.sync(conn.backend) is True


def test_a_read_snapshot_sees_no_later_commit(pg_location: Location) -> None:
    reader, writer = _make(pg_location), _other(pg_location)
    try:
        with db.reading(reader):
            assert reader.execute("SELECT count(*) FROM meta").fetchone() == (1,)
            writer.execute("INSERT INTO meta (key, value) VALUES ('later', '1')")
            assert reader.execute("SELECT count(*) FROM meta").fetchone() == (1,)
            with pytest.raises(sqlite3.OperationalError, match="read-only"):
                reader.execute("INSERT INTO meta (key, value) VALUES ('no', '1')")
        assert not reader.in_transaction
        assert reader.execute("SELECT count(*) FROM meta").fetchone() == (2,)
    finally:
        reader.close()
        writer.close()


def test_records_go_in_by_copy_in_append_order(conn: PgConn) -> None:
    rows = [
        (f"run-{i % 3}", i // 3, "reading", 1.5 + i, 10**18 + i, "{}", "p", f"h{i}")
        for i in range(9)
    ]
    db.begin_write(conn)
    db.insert_records(conn, rows)
    conn.execute("COMMIT")
    stored = conn.execute("SELECT * FROM records ORDER BY id").fetchall()
    assert stored == [(*row, i + 1) for i, row in enumerate(rows)]
    conn.execute("INSERT INTO records VALUES ('run-x', 0, 'reading', 0.0, 0, '{}', 'p', 'h')")
    db.begin_write(conn)
    with pytest.raises(sqlite3.IntegrityError):
        db.insert_records(conn, rows[:1])
    conn.execute("ROLLBACK")


def test_the_server_clock_and_the_change_counter(pg_location: Location, conn: PgConn) -> None:
    before = time.time_ns()
    now = db.server_now_ns(conn)
    assert abs(now - before) < 60 * 10**9  # the same machine: the same clock, near enough
    counter = db.change_counter(conn)
    other = _other(pg_location)
    try:
        other.execute("INSERT INTO meta (key, value) VALUES ('moved', '1')")
    finally:
        other.close()
    assert db.change_counter(conn) != counter


def test_read_only_connections_refuse_writes(pg_location: Location) -> None:
    _make(pg_location).close()
    assert pg_location.url is not None
    conn = PgBackend(pg_location.url).connect_read_only()
    try:
        with pytest.raises(sqlite3.OperationalError, match="read-only"):
            conn.execute("INSERT INTO meta (key, value) VALUES ('no', '1')")
    finally:
        conn.close()


def test_closed_connections_go_back_to_the_pool(pg_location: Location) -> None:
    first = _make(pg_location)
    first.execute("SET synchronous_commit = on")
    first.execute("BEGIN")
    first.close()
    first.close()  # twice: once
    for _ in range(3):  # every idle connection of the pool, reset
        again = _other(pg_location)
        assert not again.in_transaction
        assert again.execute("SELECT current_setting('synchronous_commit')").fetchone() == ("off",)
        again.close()


def test_an_unreachable_server_is_refused_at_once() -> None:
    started = time.monotonic()
    with pytest.raises(
        JournalOpenError, match="cannot connect to journal postgresql://qa:\\*\\*\\*@"
    ):
        db.open_backend("postgresql://qa:s3cret@127.0.0.1:1/cellauto").connect(
            create=False, timeout_s=1.0
        )
    assert time.monotonic() - started < 30


def _drop_connections(location: Location) -> int:
    """Terminate, from the server, every connection of the journal's pool (a network cut,
    a server restart, an operator's pg_terminate_backend)."""
    assert location.url is not None
    schema = split_url(location.url)[1]
    killer = _other(location)
    try:
        killer.raw.execute("SET application_name = 'killer'")
        rows = killer.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = ? AND pid <> pg_backend_pid()",
            (f"cellauto:{schema}",),
        ).fetchall()
    finally:
        killer.close()
    return len(rows)


def test_a_dropped_connection_is_replaced_outside_a_transaction(pg_location: Location) -> None:
    conn = _make(pg_location)
    try:
        db.set_durable(conn, True)  # a session setting: applied again on the new one
        assert _drop_connections(pg_location) >= 1
        assert conn.execute("SELECT count(*) FROM meta").fetchone() == (1,)  # a read: again
        assert conn.reconnects == 1
        show = "SELECT current_setting('synchronous_commit'), current_setting('lock_timeout')"
        assert conn.execute(show).fetchone() == ("on", "5s")
        # a write outside a transaction is not run again: it may have been committed
        _drop_connections(pg_location)
        with pytest.raises(sqlite3.OperationalError):
            conn.execute("INSERT INTO meta (key, value) VALUES ('w', '1')")
        conn.execute("INSERT INTO meta (key, value) VALUES ('w', '1')")  # replaced now
    finally:
        conn.close()


def test_a_connection_dropped_inside_a_transaction_refuses_all_but_rollback(
    pg_location: Location,
) -> None:
    conn = _make(pg_location)
    try:
        db.begin_write(conn, Lock.SITE)
        conn.execute("INSERT INTO meta (key, value) VALUES ('lost', '1')")
        _drop_connections(pg_location)
        with pytest.raises(sqlite3.OperationalError):
            conn.execute("INSERT INTO meta (key, value) VALUES ('lost2', '1')")
        assert conn.in_transaction
        with pytest.raises(sqlite3.OperationalError, match="lost inside a transaction"):
            conn.execute("COMMIT")  # never as if it were still open
        conn.execute("ROLLBACK")
        assert not conn.in_transaction
        assert conn.execute("SELECT count(*) FROM meta WHERE key LIKE 'lost%'").fetchone() == (0,)
    finally:
        conn.close()


def test_a_journal_writes_on_after_its_connections_dropped(pg_location: Location) -> None:
    from cellauto.records import Journal, RecordKind, verify_journal
    from tests.records.factory import payload_of

    with Journal(pg_location) as journal:
        run = journal.begin_run("run-cut", lambda: 0.0)
        run.append(payload_of(RecordKind.READING, {"i": 0}))
        journal.flush()
        assert _drop_connections(pg_location) >= 2  # the journal's and its writer's
        run.append(payload_of(RecordKind.READING, {"i": 1}))
        journal.flush()  # the writer's BEGIN runs again on a new connection
        assert [r.seq for r in journal.records("run-cut")] == [0, 1]
        assert verify_journal(journal).intact
