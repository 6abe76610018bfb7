"""Operator tasks, alarms and notifications in a real browser (Debian's Chromium under
Playwright) against ``cellauto serve`` and the live run in their own processes.

Scenario 3: alice confirms "connect feed bag" (name and password: her session's first
signature), enters the bag weight (password alone), bob verifies it from his own
session; scenario 5: the alarm is acknowledged with a comment. Each act is checked in
the journal. The live events of the line (live.js) are dispatched by the test where it
waits for the run's controller, as the page's scripts listen to those DOM events only.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from cellauto.records import Journal
from cellauto.records.site_payloads import (
    AlarmAcknowledged,
    SessionOpened,
    Signature,
    TaskAnswer,
)
from cellauto.records.task_rows import TaskRow, open_tasks
from cellauto.site.history import reading_journal
from tests.browser import CHROMIUM, launch
from tests.web.conftest import site_records
from tests.web.harness import password, sign_in, wait_for

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium")
expect = sync_api.expect
WAIT_MS = 60_000  # a hang deadline: the machine may be loaded


def _task(db: Path, run_id: str, name: str, phase: str = "perform") -> TaskRow:
    found: list[TaskRow] = []

    def ready() -> bool:
        with reading_journal(db) as conn:
            found[:] = [r for r in open_tasks(conn, run_id) if (r.name, r.phase) == (name, phase)]
        return bool(found)

    wait_for(ready, f"task {name} ({phase})")
    return found[0]


def _event(page: Any, name: str, detail: dict[str, Any] | None = None) -> None:
    """What live.js does for every event of the stream."""
    page.evaluate(
        "([name, detail]) => document.dispatchEvent(new CustomEvent('cellauto:' + name, {detail}))",
        [name, detail or {}],
    )


def test_tasks_answered_with_signatures_from_two_sessions(
    live_line: tuple[Path, Any, Any], tmp_path: Path
) -> None:
    db, run, server = live_line
    connect = _task(db, run.run_id, "connect feed bag")
    with sync_api.sync_playwright() as playwright:
        first = launch(playwright, tmp_path / "alice")
        second = launch(playwright, tmp_path / "bob")
        try:
            alice = first.new_page()
            sign_in(alice, server.url, "alice")
            alice.goto(f"{server.url}/tasks")
            card = alice.locator(f"#task-{connect.task_id}")
            expect(card).to_contain_text("connect feed bag")
            expect(card).to_contain_text("Weld the feed bag to the set.")
            card.locator("input[name=signer]").fill("alice")
            card.locator("input[name=password]").fill(password("alice"))
            _event(alice, "counts")  # the line changed while she signs: her form is kept
            expect(alice.locator("#task-cards")).to_have_attribute("data-stale", "1")
            expect(card.locator("input[name=signer]")).to_have_value("alice")
            card.get_by_role("button", name="Confirm").click()
            expect(alice.locator(".flash")).to_contain_text(
                "performed and signed — waiting for the controller"
            )
            weigh = _task(db, run.run_id, "bag weight")
            _event(alice, "tasks")  # the controller took it up: the list is fetched again
            expect(alice.locator(f"#task-{connect.task_id}")).to_have_count(0, timeout=WAIT_MS)
            card = alice.locator(f"#task-{weigh.task_id}")
            expect(card).to_contain_text("70\u201390 g")
            expect(card.locator("input[name=signer]")).to_have_count(0)  # password alone
            expect(card.locator("input[name=value]")).to_have_attribute("inputmode", "decimal")
            card.locator("input[name=value]").fill("80.5")
            card.locator("input[name=password]").fill(password("alice"))
            card.get_by_role("button", name="Enter and sign").click()
            expect(alice.locator(".flash")).to_contain_text("waiting for the controller")

            verify = _task(db, run.run_id, "bag weight", "verify")
            bob = second.new_page()
            sign_in(bob, server.url, "bob")
            bob.goto(f"{server.url}/tasks")
            card = bob.locator(f"#task-{verify.task_id}")
            expect(card.locator(".entered")).to_have_text("Entered: 80.5 g by alice")
            card.locator("input[name=signer]").fill("bob")
            card.locator("input[name=password]").fill(password("bob"))
            card.get_by_role("button", name="Verify").click()
            expect(bob.locator(".flash")).to_contain_text("verified and signed")
        finally:
            second.close()
            first.close()
    wait_for(lambda: not _open(db, run.run_id, verify.task_id), "the verification taken up")
    records = site_records(db)
    sessions = {
        p.name: p.session_id
        for p in records
        if isinstance(p, SessionOpened) and p.purpose == "web app"
    }
    answers = [(p.by, p.phase, p.value) for p in records if isinstance(p, TaskAnswer)]
    assert answers == [
        ("alice", "perform", None),
        ("alice", "perform", 80.5),
        ("bob", "verify", None),
    ]
    signed = [
        (s.signer, s.meaning.value, s.components, s.session_id, s.terminal.remote_address)
        for s in records
        if isinstance(s, Signature)
    ]
    assert signed == [
        ("alice", "performed", "user_id+password", sessions["alice"], "127.0.0.1"),
        ("alice", "performed", "password", sessions["alice"], "127.0.0.1"),
        ("bob", "verified", "user_id+password", sessions["bob"], "127.0.0.1"),
    ]
    with Journal(db, create=False) as journal:
        kinds = [r.kind for r in journal.records(run.run_id)]
    assert kinds.count("task_answered") == 2 and kinds.count("task_verified") == 1


def _open(db: Path, run_id: str, task_id: str) -> bool:
    with reading_journal(db) as conn:
        return any(r.task_id == task_id for r in open_tasks(conn, run_id))


def test_an_alarm_acknowledged_with_a_comment(
    live_line: tuple[Path, Any, Any], tmp_path: Path
) -> None:
    db, run, server = live_line
    _task(db, run.run_id, "connect feed bag")  # the alarm is raised before it
    with sync_api.sync_playwright() as playwright:
        context = launch(playwright, tmp_path / "profile")
        try:
            page = context.new_page()
            sign_in(page, server.url, "alice")
            expect(page.locator("#badge-alarms")).to_have_text("1")
            page.click("nav.pages >> text=Alarms")
            alarm = page.locator("article.alarm")
            expect(alarm).to_have_count(1)
            expect(alarm).to_have_class(re.compile(r"\bmajor\b"))
            expect(alarm.locator("h2")).to_have_text("pH probe drift suspected")
            alarm.locator("textarea[name=comment]").fill("probe recalibrated, pH in range")
            alarm.get_by_role("button", name="Acknowledge").click()
            expect(page.locator(".flash")).to_contain_text("acknowledged")
            expect(page.locator("article.alarm")).to_have_count(0)
            expect(page.locator("#badge-alarms")).to_have_text("0")
            expect(page.locator("table.acked")).to_contain_text("probe recalibrated, pH in range")
        finally:
            context.close()
    (ack,) = [p for p in site_records(db) if isinstance(p, AlarmAcknowledged)]
    assert (ack.by, ack.run_id, ack.comment) == (
        "alice",
        run.run_id,
        "probe recalibrated, pH in range",
    )
    assert ack.terminal.remote_address == "127.0.0.1"


STUBS = """
window.__notes = [];
window.__tones = 0;
window.Notification = class {
  static permission = "granted";
  static requestPermission() { return Promise.resolve("granted"); }
  constructor(title, options) { window.__notes.push([title, options.body]); }
};
window.AudioContext = class {
  constructor() { this.state = "running"; this.currentTime = 0; this.destination = {}; }
  resume() { return Promise.resolve(); }
  createGain() {
    const param = { setValueAtTime() {}, exponentialRampToValueAtTime() {} };
    return { gain: param, connect() {} };
  }
  createOscillator() {
    window.__tones += 1;
    return { frequency: { setValueAtTime() {} }, connect() {}, start() {}, stop() {} };
  }
};
"""


def test_new_tasks_notify_once_per_browser_and_alert_after_a_click(
    live_line: tuple[Path, Any, Any], tmp_path: Path
) -> None:
    _, _, server = live_line
    with sync_api.sync_playwright() as playwright:
        context = launch(playwright, tmp_path / "profile")
        context.add_init_script(STUBS)  # a browser's Notification and WebAudio, observed
        try:
            page = context.new_page()
            sign_in(page, server.url, "alice")
            page.goto(f"{server.url}/tasks")
            button = page.locator("#enable-alerts")
            expect(button).to_have_text("Enable alerts")
            _event(page, "counts", {"tasks": 1, "alarms": 1, "new_tasks": ["T1"]})
            expect(page).to_have_title("(1) Tasks · cellauto")
            expect(page.locator("#badge-tasks")).to_have_class(re.compile(r"\bpulse\b"))
            assert page.evaluate("[window.__notes.length, window.__tones]") == [0, 0]
            button.click()  # the user gesture: alerts from now on
            expect(button).to_have_text("Alerts on")
            _event(page, "counts", {"tasks": 2, "alarms": 1, "new_tasks": ["T1", "T2"]})
            expect(page).to_have_title("(2) Tasks · cellauto")
            assert page.evaluate("window.__notes") == [["Task waiting for a person", "task T2"]]
            assert page.evaluate("window.__tones") == 4  # the click's tone, then this one
            other = context.new_page()  # another tab of the same browser: seen already
            other.goto(f"{server.url}/tasks")
            _event(other, "counts", {"tasks": 2, "alarms": 1, "new_tasks": ["T2"]})
            _event(other, "counts", {"tasks": 3, "alarms": 1, "new_tasks": ["T3"]})
            expect(other).to_have_title("(3) Tasks · cellauto")
            assert other.evaluate("window.__notes") == [["Task waiting for a person", "task T3"]]
            other.emulate_media(reduced_motion="reduce")
            badge = other.locator("#badge-tasks")
            expect(badge).to_have_class(re.compile(r"\bpulse\b"))
            assert badge.evaluate("b => getComputedStyle(b).animationName") == "none"
        finally:
            context.close()
