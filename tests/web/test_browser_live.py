"""The line overview live in a real browser (design §10.2, scenario 2): the live run's
row shows its protocol, chain of identity, state, step, waiting task and alarm; when the
task is answered from another process, the row's step moves on without the page being
reloaded, and the page's own scripts hear the update as a ``cellauto:row`` DOM event."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cellauto.records.task_rows import open_tasks
from cellauto.site.auth import authenticate
from cellauto.site.history import reading_journal
from cellauto.site.store import open_site_store
from cellauto.site.task_answers import answer_task
from tests.browser import CHROMIUM, launch
from tests.site.chain import TERMINAL
from tests.web.harness import password, sign_in, wait_for

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium")
TIMEOUT_MS = 60_000  # a hang deadline: the machine may be loaded


def _open_task(db: Path, run_id: str, name: str) -> str | None:
    with reading_journal(db) as conn:
        found = [row.task_id for row in open_tasks(conn, run_id) if row.name == name]
    return found[0] if found else None


def test_the_overview_follows_the_live_run_without_reloading(
    live_line: tuple[Path, Any, Any], tmp_path: Path
) -> None:
    db, run, server = live_line
    wait_for(lambda: _open_task(db, run.run_id, "connect feed bag") is not None, "the task")
    expect = sync_api.expect
    with sync_api.sync_playwright() as playwright:
        context = launch(playwright, tmp_path / "profile")
        try:
            page = context.new_page()
            sign_in(page, server.url, "alice")
            row = page.locator(f"#run-{run.run_id}")
            expect(row.locator(".protocol-name")).to_have_text("web-live", timeout=TIMEOUT_MS)
            expect(row.locator(".coi")).to_have_text("COI W123426A1B2C3")
            expect(row.locator(".state-label")).to_have_text("Running")
            expect(row.locator(".step-name")).to_have_text("connect")
            expect(row.locator(".needs .tasks")).to_have_text("1 task")
            expect(row.locator(".needs .alarms")).to_have_text("1 alarm")
            expect(row).to_have_class("run state-running attention")
            expect(page.locator("#badge-tasks")).to_have_text("1")
            page.evaluate(
                "window.__noReload = 1; window.__rows = [];"
                "document.addEventListener('cellauto:row', (e) => window.__rows.push(e.detail.run))"
            )

            task_id = _open_task(db, run.run_id, "connect feed bag")
            assert task_id is not None
            with open_site_store(db) as store:  # alice, at another terminal
                who = authenticate(
                    store, "alice", password("alice"), purpose="test", terminal=TERMINAL
                )
                answer_task(store, who, task_id)

            expect(row.locator(".step-name")).to_have_text("weigh", timeout=TIMEOUT_MS)
            expect(row.locator(".needs .tasks")).to_have_text("1 task")  # the weight
            assert page.evaluate("window.__noReload") == 1
            assert run.run_id in page.evaluate("window.__rows")  # page scripts hear it too
        finally:
            context.close()


def test_a_new_run_appears_and_a_lost_stream_comes_back(journal: Path, tmp_path: Path) -> None:
    from cellauto.records import Journal
    from tests.web.test_changes import Clock, begin
    from tests.web.test_events import Served

    served = Served(journal)
    expect = sync_api.expect
    try:
        with sync_api.sync_playwright() as playwright:
            context = launch(playwright, tmp_path / "profile")
            try:
                page = context.new_page()
                sign_in(page, served.url, "ann")
                page.evaluate(
                    "window.__noReload = 1; const b = document.body;"
                    "document.addEventListener('cellauto:reconnected',"
                    " () => { b.dataset.back = (+b.dataset.back || 0) + 1; })"
                )
                with Journal(journal) as writer:
                    begin(writer, "run-n", Clock(), coi="W123426A1B2C3")
                    row = page.locator("#run-run-n")
                    expect(row.locator(".state-label")).to_have_text("Running", timeout=TIMEOUT_MS)
                hub = served.app.state.services.hub
                hub._loop.call_soon_threadsafe(hub.end_streams)  # the stream is cut
                expect(page.locator("body")).to_have_attribute("data-back", "1", timeout=TIMEOUT_MS)
                expect(page.locator("#runs-body tr")).to_have_count(1)  # re-read, once
                assert page.evaluate("window.__noReload") == 1
            finally:
                context.close()
    finally:
        served.stop()
