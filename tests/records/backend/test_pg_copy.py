"""The records insert on PostgreSQL: binary COPY, all rows encoded before one send."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest
from psycopg.copy import LibpqWriter

from cellauto.records import backend as db
from cellauto.records.backend import Location
from cellauto.records.backend.pg import PgBackend, PgConn
from cellauto.records.backend.pg_copy import RECORD_COLUMNS

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


def test_the_rows_of_an_insert_are_sent_at_once_after_all_are_encoded(
    conn: PgConn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each send lets go of the GIL, which the writer thread then waits for behind the
    event loop: psycopg's own writer sends every 32 KiB, ~25 times for these rows."""
    body = '{"payload":"' + "x" * 380 + '"}'
    rows = [
        (f"run-{i % 7}", i // 7, "reading", 0.5 * i, 10**18 + i, body, "p" * 64, f"{i:064x}")
        for i in range(2000)
    ]
    sent: list[int] = []
    real_write = LibpqWriter.write

    def counting_write(self: LibpqWriter, data: bytes) -> None:
        sent.append(len(data))
        real_write(self, data)

    monkeypatch.setattr(LibpqWriter, "write", counting_write)
    db.begin_write(conn)
    db.insert_records(conn, rows)
    conn.execute("COMMIT")
    assert len(sent) == 1 and sent[0] > 2000 * len(body)
    stored = conn.execute(f"SELECT {RECORD_COLUMNS} FROM records ORDER BY id").fetchall()
    assert stored == rows


def test_a_failed_copy_sends_nothing_and_keeps_the_connection_usable(conn: PgConn) -> None:
    row = ("run-0", 0, "reading", 0.0, 1, "{}", "p", "h")
    db.begin_write(conn)
    db.insert_records(conn, [row])
    conn.execute("COMMIT")
    db.begin_write(conn)
    with pytest.raises(sqlite3.DataError, match="expected 8 values"):
        db.insert_records(conn, [("run-0", 1, "reading", 0.0, 2, "{}", "p", "h"), (1, 2)])
    conn.execute("ROLLBACK")
    assert conn.execute("SELECT count(*) FROM records").fetchone() == (1,)


def test_a_large_insert_is_sent_in_blocks_of_send_bytes(
    conn: PgConn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A commit after an outage holds every record buffered meanwhile: its encoded rows
    are sent every SEND_BYTES, not kept whole."""
    monkeypatch.setattr("cellauto.records.backend.pg_copy.SEND_BYTES", 100_000)
    body = '{"payload":"' + "y" * 380 + '"}'
    rows = [
        (f"run-{i % 5}", i // 5, "reading", 0.25 * i, 10**18 + i, body, "p" * 64, f"{i:064x}")
        for i in range(1000)
    ]
    sent: list[int] = []
    real_write = LibpqWriter.write

    def counting_write(self: LibpqWriter, data: bytes) -> None:
        sent.append(len(data))
        real_write(self, data)

    monkeypatch.setattr(LibpqWriter, "write", counting_write)
    db.begin_write(conn)
    db.insert_records(conn, rows)
    conn.execute("COMMIT")
    assert 3 <= len(sent) <= 6
    assert all(size >= 100_000 for size in sent[:-1])
    stored = conn.execute(f"SELECT {RECORD_COLUMNS} FROM records ORDER BY id").fetchall()
    assert stored == rows
