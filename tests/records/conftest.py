"""Fixtures for the run-journal tests: deterministic clocks and a journal (a file on
SQLite, a schema on PostgreSQL: ``--db-backend``)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from cellauto.records import Journal
from cellauto.records import backend as db
from cellauto.records.backend import Location
from cellauto.records.backend.locks import ALL
from cellauto.testing import raw_connection

START_S = 1_767_225_600.0  # 2026-01-01T00:00:00Z


class StepClock:
    """A process clock that advances ``step_s`` seconds each time it is read."""

    def __init__(self, start_s: float = START_S, step_s: float = 0.5) -> None:
        self.now = start_s
        self.step_s = step_s

    def __call__(self) -> float:
        value = self.now
        self.now += self.step_s
        return value


MakeClock = Callable[..., StepClock]


@pytest.fixture
def start_s() -> float:
    """The process time of the first record made with ``make_clock()``."""
    return START_S


@pytest.fixture
def make_clock() -> MakeClock:
    """``make_clock(start_s=START_S, step_s=0.5)`` -> a :class:`StepClock`."""
    return StepClock


@pytest.fixture
def fixed_wall_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make wall_time_ns deterministic: 1 ms steps from START_S."""
    ticks = itertools.count(int(START_S) * 1_000_000_000, 1_000_000)
    monkeypatch.setattr("cellauto.records.run_journal._time_ns", lambda: next(ticks))


@pytest.fixture
def journal_path(db_location: Location) -> Location:
    """Where the test's journal is (a file on SQLite)."""
    return db_location


@pytest.fixture
def journal(journal_path: Location) -> Iterator[Journal]:
    with Journal(journal_path) as opened:
        yield opened


def stored_records(location: Location) -> int:
    """Records visible to an independent connection (what survives a crash)."""
    conn = raw_connection(location)
    try:
        return int(conn.execute("SELECT count(*) FROM records").fetchone()[0])
    finally:
        conn.close()


@contextmanager
def write_lock(location: Location) -> Iterator[None]:
    """Hold the journal's write locks from another connection (SQLite: its one lock)."""
    conn = raw_connection(location)
    db.begin_write(conn, *ALL)
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()
