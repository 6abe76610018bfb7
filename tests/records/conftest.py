"""Fixtures for the run-journal tests: deterministic clocks and a journal file."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from cellauto.records import Journal

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
def journal_path(tmp_path: Path) -> Path:
    return tmp_path / "journal.db"


@pytest.fixture
def journal(journal_path: Path) -> Iterator[Journal]:
    with Journal(journal_path) as opened:
        yield opened


def stored_records(path: Path) -> int:
    """Records visible to an independent connection (what survives a crash)."""
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT count(*) FROM records").fetchone()[0])
    finally:
        conn.close()


@contextmanager
def write_lock(path: Path) -> Iterator[None]:
    """Hold the database's write lock from another connection."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()
