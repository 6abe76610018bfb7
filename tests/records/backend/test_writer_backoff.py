"""The writer backs off while its commits fail and nobody waits (a heartbeat due, a batch
without a waiter): a journal whose server is gone, or whose pool was closed, is not
hammered, and the failure is logged once with what is retried and how often. A waited-for
attempt (a flush) still tries at once; a commit that works resets the back-off."""

from __future__ import annotations

import itertools
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from cellauto.errors import JournalError
from cellauto.records._writer import Writer

FIRST_S = 0.02
MAX_S = 0.08
DEADLINE_S = 60.0


class Unreachable:
    """A connection whose every statement fails, as one to a stopped server does; it
    notes when each commit was attempted (its ``BEGIN``)."""

    def __init__(self) -> None:
        self.attempts: list[float] = []
        self.cond = threading.Condition()
        self.works = False
        self.in_transaction = False

    def execute(self, sql: str, *args: Any) -> Any:
        if sql.startswith("BEGIN"):
            with self.cond:
                self.attempts.append(time.monotonic())
                self.cond.notify_all()
        if self.works:
            return None
        raise sqlite3.OperationalError("the connection to the server was lost")

    def executemany(self, sql: str, rows: Any) -> Any:
        return self.execute(sql)

    def close(self) -> None:
        pass

    def wait_attempts(self, count: int) -> list[float]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.attempts) >= count, DEADLINE_S)
            return list(self.attempts)


class DueFence:
    """A fence whose heartbeat is always due (its runs' heartbeat never got written)."""

    lost: dict[str, str] = {}

    def until_beat_s(self) -> float:
        return 0.0

    def admit(self, conn: Any, rows: Any, events: Any) -> tuple[Any, Any]:
        return rows, events

    def beat(self, conn: Any) -> None:
        pass


def _writer(tmp_path: Path, conn: Unreachable, fence: DueFence | None = None) -> Writer:
    return Writer(
        tmp_path / "journal.db",
        timeout_s=1.0,
        window_s=0.001,
        connect=lambda: conn,  # type: ignore[arg-type,return-value]
        fence=fence,  # type: ignore[arg-type]
        retry_first_s=FIRST_S,
        retry_max_s=MAX_S,
    )


def test_a_failing_heartbeat_is_retried_later_and_later_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="cellauto.records.journal")
    conn = Unreachable()
    writer = _writer(tmp_path, conn, DueFence())
    try:
        attempts = conn.wait_attempts(6)
    finally:
        writer.abandon()
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    backoff = [FIRST_S, 2 * FIRST_S, MAX_S, MAX_S, MAX_S]
    assert all(gap >= wait for gap, wait in zip(gaps, backoff, strict=False)), gaps
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    message = errors[0].getMessage()
    assert "cannot write the heartbeat" in message and "connection to the server was lost" in (
        message
    )
    assert "retrying in 0.02 s" in message and "at most every 0.08 s" in message
    assert writer.failures >= 6


def test_a_flush_tries_at_once_and_a_working_commit_resets_the_backoff(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    conn = Unreachable()
    writer = Writer(
        tmp_path / "journal.db",
        timeout_s=1.0,
        window_s=0.001,
        connect=lambda: conn,  # type: ignore[arg-type,return-value]
        retry_first_s=DEADLINE_S,  # an unwaited retry would come after the test's deadline
        retry_max_s=DEADLINE_S,
    )
    row = ("run-a", 0, "reading", 0.0, 0, "{}", "p", "h")
    try:
        writer.submit([row], [], None)  # nobody waits: fails, logged, backed off
        conn.wait_attempts(1)
        writer.wait_idle()
        assert writer.failures == 1
        from cellauto.records._writer import SyncWaiter

        waiter = SyncWaiter()
        writer.submit([], [], None, urgent=True, waiter=waiter)  # a flush: at once
        with pytest.raises(JournalError, match="cannot write 1 records"):
            writer.wait(waiter)
        assert len(conn.attempts) == 2 and writer.failures == 2
        conn.works = True
        waiter = SyncWaiter()
        writer.submit([], [], None, urgent=True, waiter=waiter)
        writer.wait(waiter)
        assert writer.failures == 0 and writer.commits == 1
        assert "commits work again after 2 failed attempts" in caplog.text
    finally:
        writer.abandon()
