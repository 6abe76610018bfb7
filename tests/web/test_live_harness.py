"""The harness the browser tests stand on: a run in progress in its own process waits at
its first operator task with an alarm raised, and ``cellauto serve`` on the same journal
answers; both stop when the test ends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from cellauto.records.task_rows import open_tasks
from cellauto.site.history import reading_journal
from tests.web.harness import wait_for


def _open(db: Path, run_id: str) -> list[str]:
    with reading_journal(db) as conn:
        return [row.name for row in open_tasks(conn, run_id)]


def _alarms(db: Path, run_id: str) -> int:
    with reading_journal(db) as conn:
        return int(
            conn.execute(
                "SELECT count(*) FROM records WHERE run_id = ? AND kind = 'alarm'", (run_id,)
            ).fetchone()[0]
        )


def test_the_live_run_waits_for_a_person_and_the_server_answers(
    live_line: tuple[Path, Any, Any],
) -> None:
    db, run, server = live_line
    wait_for(lambda: _open(db, run.run_id) == ["connect feed bag"], "the first task")
    assert _alarms(db, run.run_id) == 1
    page = httpx.get(f"{server.url}/login")
    assert page.status_code == 200 and "Sign in" in page.text
    assert run.process.poll() is None  # still waiting for the person
