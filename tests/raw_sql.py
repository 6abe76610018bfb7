"""A plain connection to a test journal's database, on either backend (for tests that read
or tamper with rows directly; the ``raw_db`` fixture does the same where a fixture fits)."""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Iterator

import pytest

from cellauto.records.backend import Conn, Location

__all__ = ["close_pg_pools_after_test", "journal_snapshot", "nothing_written", "raw_connect"]


def raw_connect(where: str | os.PathLike[str] | Location) -> Conn:
    """An autocommit connection to the journal's database (nothing checked); the caller
    closes it."""
    location = Location.parse(where)
    if location.url is not None:
        from cellauto.records.backend.pg import PgBackend

        return PgBackend(location.url).connect_writer(timeout_s=5.0)
    return sqlite3.connect(location.sqlite_path(), isolation_level=None)


@pytest.fixture(autouse=True)
def close_pg_pools_after_test() -> Iterator[None]:
    """After each test, close this process's PostgreSQL pools: a journal a test left open
    (a simulated crash, a run's journal never closed) otherwise keeps its pooled
    connections, and the next tests on the same schema wait for one in vain. Import it
    into a test folder's conftest to use it."""
    yield
    if "cellauto.records.backend.pg" in sys.modules:
        from cellauto.records.backend.pg import close_pools

        close_pools()


def nothing_written(where: str | os.PathLike[str] | Location) -> bool:
    """Whether nothing was written to the journal at ``where``: no file (SQLite), or no
    run or site record in its schema (PostgreSQL: a test's schema exists beforehand)."""
    location = Location.parse(where)
    if location.path is not None:
        return not location.path.exists()
    conn = raw_connect(location)
    try:
        (records,) = conn.execute("SELECT count(*) FROM records").fetchone()
        (site,) = conn.execute("SELECT count(*) FROM site_records").fetchone()
    finally:
        conn.close()
    return int(records) == 0 and int(site) == 0


def journal_snapshot(where: str | os.PathLike[str] | Location) -> dict[str, object]:
    """What a test compares to show nothing was written: the file's and its WAL's bytes
    (SQLite), or every row of the chains and the ledger (PostgreSQL)."""
    location = Location.parse(where)
    if location.path is not None:
        path = location.path
        files = (path, path.with_name(path.name + "-wal"))
        return {p.name: p.read_bytes() for p in files if p.exists()}
    conn = raw_connect(location)
    try:
        return {
            table: [tuple(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2")]
            for table in ("records", "site_records", "ledger", "ledger_head")
        }
    finally:
        conn.close()
