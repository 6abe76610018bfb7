"""A plain connection to a test journal's database, on either backend (for tests that read
or tamper with rows directly; the ``raw_db`` fixture does the same where a fixture fits)."""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Iterator

import pytest

from cellauto.records.backend import Conn, Location

__all__ = ["close_pg_pools_after_test", "raw_connect"]


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
