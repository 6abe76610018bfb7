"""Scenario 4 in a real browser: alice holds the live run from its page while it waits at
``connect`` and restarts it. Hold is enabled and Restart disabled while it runs; each
command asks for a reason and her signature (her name too at the session's first); the
page shows the request waiting, then the state the controller reached — updated by the
page's script on the run's live event, without a reload. In the journal: two signed
``run_command_requested``, and the run's Hold and Restart accepted from alice's requests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cellauto.records import Journal
from cellauto.records.kinds import RecordKind
from cellauto.records.payloads import Command
from cellauto.records.site_payloads import RunCommandRequested, Signature
from cellauto.site.history import reading_journal
from cellauto.web.run_view import current_state
from tests.browser import CHROMIUM, launch
from tests.web.conftest import site_records
from tests.web.harness import password, sign_in, wait_for

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium")
expect = sync_api.expect

_LIVE_EVENT = """runId => new Promise(resolve => {
  document.addEventListener("cellauto:run-page-updated", () => resolve(true), {once: true});
  document.dispatchEvent(new CustomEvent("cellauto:run", {detail: {run: runId, seq: 0}}));
})"""
"""What live.js does on a ``run`` event of the page's run; resolves once run.js refetched."""


def _state(db: Path, run_id: str) -> str:
    with reading_journal(db) as conn:
        return current_state(conn, run_id)


def _waiting_at_connect(db: Path, run_id: str) -> bool:
    with reading_journal(db) as conn:
        row = conn.execute(
            "SELECT 1 FROM tasks WHERE run_id = ? AND name = 'connect feed bag'"
            " AND status = 'open'",
            (run_id,),
        ).fetchone()
    return row is not None


def _command(page: Any, name: str, reason: str, first: bool) -> None:
    page.fill("textarea[name=reason]", reason)
    if first:
        page.fill("input[name=signer]", "alice")
    else:
        assert page.locator("input[name=signer]").count() == 0
    page.fill("input[name=password]", password("alice"))
    page.click(f"button[name=command][value={name}]")


def test_hold_and_restart_from_the_run_page(
    live_line: tuple[Path, Any, Any], tmp_path: Path
) -> None:
    db, run, server = live_line
    run_id = run.run_id
    wait_for(lambda: _waiting_at_connect(db, run_id), "the run to wait at connect")
    with sync_api.sync_playwright() as playwright:
        context = launch(playwright, tmp_path / "profile")
        try:
            page = context.new_page()
            sign_in(page, server.url, "alice")
            page.goto(f"{server.url}/runs/{run_id}")
            expect(page.locator("#run-state-name")).to_have_text("Running")
            expect(page.locator("#run-current-step")).to_have_text("connect")
            expect(page.locator("#step-connect")).to_have_class("step outcome-in-progress current")
            expect(page.locator("button[value=hold]")).to_be_enabled()
            expect(page.locator("button[value=restart]")).to_be_disabled()
            expect(page.locator("#panel-ph")).to_be_visible()  # 12 h of culture plotted
            expect(page.locator("#panel-ph path.line")).to_have_count(1)
            expect(page.locator("#panel-ph path.setpoint")).to_have_count(1)
            expect(page.locator("#panel-ph .marker-alarm")).to_have_count(1)  # probe drift
            expect(page.locator("#panel-freeze")).to_be_hidden()  # no freezer in this run

            _command(page, "hold", "feed bag line kinked", first=True)
            page.wait_for_url(f"{server.url}/runs/{run_id}")
            expect(page.locator("p.flash")).to_contain_text("Hold requested")
            expect(page.locator("#run-requests")).to_contain_text("Hold requested by alice")
            page.evaluate("window.__noReload = 1")
            wait_for(lambda: _state(db, run_id) == "Held", "the controller to hold the run")
            assert page.evaluate(_LIVE_EVENT, run_id) is True
            expect(page.locator("#run-state-name")).to_have_text("Held")
            expect(page.locator("#run-requests li").first).to_contain_text(
                "Hold requested by alice: applied"
            )
            expect(page.locator("button[value=restart]")).to_be_enabled()
            expect(page.locator("button[value=hold]")).to_be_disabled()
            assert page.evaluate("window.__noReload") == 1

            _command(page, "restart", "line straightened", first=False)
            page.wait_for_url(f"{server.url}/runs/{run_id}")
            wait_for(lambda: _state(db, run_id) == "Running", "the controller to restart")
            assert page.evaluate(_LIVE_EVENT, run_id) is True
            expect(page.locator("#run-state-name")).to_have_text("Running")
            expect(page.locator("#run-requests li").first).to_contain_text(
                "Restart requested by alice: applied"
            )
            expect(page.locator("button[value=hold]")).to_be_enabled()
            expect(page.locator("button[value=restart]")).to_be_disabled()
        finally:
            context.close()

    records = site_records(db)
    requests = [p for p in records if isinstance(p, RunCommandRequested)]
    assert [(p.command, p.by, p.reason) for p in requests] == [
        ("hold", "alice", "feed bag line kinked"),
        ("restart", "alice", "line straightened"),
    ]
    signatures = [
        p for p in records if isinstance(p, Signature) and p.signed.kind == "run_command_requested"
    ]
    assert [(s.signer, s.meaning.value) for s in signatures] == [("alice", "performed")] * 2
    assert signatures[0].components == "user_id+password"
    with Journal(db, create=False, any_thread=True) as journal:
        commands = [r.payload for r in journal.records(run_id, {RecordKind.COMMAND})]
    applied = [c for c in commands if isinstance(c, Command) and c.request is not None]
    assert [(c.command, c.accepted, c.by) for c in applied] == [
        ("Hold", True, "alice"),
        ("Restart", True, "alice"),
    ]
    with reading_journal(db) as conn:
        statuses = [s for (s,) in conn.execute("SELECT status FROM run_requests ORDER BY site_seq")]
    assert statuses == ["applied", "applied"]
