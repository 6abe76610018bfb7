"""The operator task inbox in-process (Starlette's TestClient) against a journal with the
live run waiting in its own process: the cards and who may answer them, answers signed
and taken up by the run's controller, "waiting for the controller" and "refused by the
controller", and every refusal rendered with its reason and journaled."""

from __future__ import annotations

import os
import re
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from cellauto.records.site_payloads import (
    SessionOpened,
    Signature,
    SignatureRefused,
    TaskAnswer,
)
from cellauto.records.task_rows import TaskRow, open_tasks, read_task
from cellauto.site.auth import authenticate
from cellauto.site.history import reading_journal
from cellauto.site.store import open_site_store
from cellauto.site.training import parse_subject, revoke_training
from cellauto.web.app import create_app
from cellauto.web.config import WebConfig
from tests.site.chain import TERMINAL
from tests.web.conftest import Browser, site_records
from tests.web.harness import LIVE_SUBJECT, LiveRun, password, wait_for


class OwnCookies:
    """The app's one TestClient as one browser: its own cookie jar for each request."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.jar: dict[str, str] = {}

    def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        self.client.cookies.clear()
        for name, value in self.jar.items():
            self.client.cookies.set(name, value)
        try:
            return self.client.request(method, url, **kw)
        finally:
            self.jar = dict(self.client.cookies.items())

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("GET", url, **kw)

    def post(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("POST", url, **kw)


class Line:
    """The journal, its live run, and the app in-process."""

    def __init__(self, db: Path, run: LiveRun, client: TestClient) -> None:
        self.db, self.run, self.client = db, run, client

    def browser(self, name: str) -> Browser:
        """A browser of its own (own cookies) signed in as ``name``."""
        own = Browser(OwnCookies(self.client))  # type: ignore[arg-type]
        assert own.sign_in(name).status_code == 303
        return own

    def task(self, name: str, phase: str = "perform") -> TaskRow:
        """The open task ``name`` in ``phase``, once the run opened it."""
        found: list[TaskRow] = []

        def ready() -> bool:
            with reading_journal(self.db) as conn:
                found[:] = [
                    r
                    for r in open_tasks(conn, self.run.run_id)
                    if (r.name, r.phase) == (name, phase)
                ]
            return bool(found)

        wait_for(ready, f"task {name} ({phase})")
        return found[0]

    def status(self, task_id: str) -> str:
        with reading_journal(self.db) as conn:
            row = read_task(conn, task_id)
        assert row is not None
        return f"{row.status}/{row.phase}"


@pytest.fixture
def line(staffed_template: Path, tmp_path: Path) -> Iterator[Line]:
    db = tmp_path / "line.db"
    shutil.copyfile(staffed_template, db)
    run = LiveRun(db, tmp_path / "controller.log")
    try:
        with TestClient(create_app(WebConfig(db=db))) as client:
            yield Line(db, run, client)
    finally:
        run.process.send_signal(signal.SIGCONT)
        run.stop()


def _card(page: str, task_id: str) -> str:
    found = re.search(rf'<article class="task[^"]*" id="task-{task_id}".*?</article>', page, re.S)
    assert found is not None, page
    return found.group(0)


def _answer(who: Browser, row: TaskRow, **fields: str) -> httpx.Response:
    form = {"run_id": row.run_id, "phase": row.phase, "password": password(_name(who)), **fields}
    return who.post(f"/tasks/{row.task_id}/answer", form)


def _name(who: Browser) -> str:
    found = re.search(r'<span class="who">[^<]*\((\w+)\)</span>', who.client.get("/tasks").text)
    assert found is not None
    return found.group(1)


def _refusals(db: Path) -> list[SignatureRefused]:
    return [p for p in site_records(db) if isinstance(p, SignatureRefused)]


def test_the_inbox_shows_the_task_first_to_who_may_answer_and_why_not_to_others(
    line: Line,
) -> None:
    row = line.task("connect feed bag")
    alice, olga, quinn = line.browser("alice"), line.browser("olga"), line.browser("quinn")
    page = alice.client.get("/tasks")
    assert page.status_code == 200
    card = _card(page.text, row.task_id)
    assert 'class="task mine"' in card
    for shown in ("connect feed bag", "Weld the feed bag to the set.", "web-live 1",
                  "W123426A1B2C3", "connect", line.run.run_id[:12]):  # fmt: skip
        assert shown in card, shown
    assert '<button type="submit">Confirm</button>' in card
    assert 'name="signer"' in card  # her first signature in this session: name too
    assert 'name="password"' in card and "I performed: connect feed bag" in card
    assert 'id="enable-alerts"' in page.text and "/static/tasks.js" in page.text
    untrained = _card(olga.client.get("/tasks").text, row.task_id)
    assert "Not yours: not trained on web-live@1" in untrained and "<form" not in untrained
    assert 'class="task other"' in untrained
    other_role = _card(quinn.client.get("/tasks").text, row.task_id)
    assert "Not yours: needs operator or supervisor" in other_role
    cards = alice.client.get("/tasks/cards")  # the fragment the page's script fetches
    assert cards.status_code == 200 and "<html" not in cards.text
    assert cards.text.lstrip().startswith('<section id="task-cards"')
    assert f'id="task-{row.task_id}"' in cards.text


def test_answers_signed_in_the_browser_are_taken_up_by_the_controller(line: Line) -> None:
    alice, bob = line.browser("alice"), line.browser("bob")
    connect = line.task("connect feed bag")
    without_name = _answer(alice, connect)  # first signature of the session: name needed
    assert without_name.status_code == 401
    assert "sign as yourself" in without_name.text
    done = _answer(alice, connect, signer="alice")
    assert done.status_code == 303
    page = alice.client.get("/tasks").text
    assert "connect feed bag: performed and signed — waiting for the controller" in page
    weigh = line.task("bag weight")
    assert line.status(connect.task_id) == "closed/perform"
    entry = _card(alice.client.get("/tasks").text, weigh.task_id)
    assert 'inputmode="decimal"' in entry and '<span class="unit">g</span>' in entry
    assert "Specification: 70\u201390 g" in entry
    assert 'name="signer"' not in entry  # the password alone from now on
    assert _answer(alice, weigh, value="80.5").status_code == 303
    verify = line.task("bag weight", "verify")
    shown = _card(bob.client.get("/tasks").text, verify.task_id)
    assert "Entered: <strong>80.5 g</strong> by alice" in shown
    assert 'value="verify">Verify</button>' in shown and 'value="reject"' in shown
    assert "you performed it" in _card(alice.client.get("/tasks").text, verify.task_id)
    assert _answer(bob, verify, signer="bob", decision="verify").status_code == 303
    wait_for(lambda: line.status(verify.task_id) == "closed/verify", "the verification")
    records = site_records(line.db)
    answers = [(p.by, p.phase, p.value) for p in records if isinstance(p, TaskAnswer)]
    assert answers == [
        ("alice", "perform", None),
        ("alice", "perform", 80.5),
        ("bob", "verify", None),
    ]
    signatures = [p for p in records if isinstance(p, Signature)]
    assert [(s.signer, s.meaning.value, s.components) for s in signatures] == [
        ("alice", "performed", "user_id+password"),
        ("alice", "performed", "password"),
        ("bob", "verified", "user_id+password"),
    ]
    assert all(s.terminal.remote_address == "testclient" for s in signatures)
    sessions = {p.name: p.session_id for p in records if isinstance(p, SessionOpened)}
    assert [s.session_id for s in signatures] == [sessions["alice"]] * 2 + [sessions["bob"]]


def test_an_answer_waits_for_the_controller_and_says_when_it_refused(line: Line) -> None:
    row = line.task("connect feed bag")
    alice = line.browser("alice")
    os.kill(line.run.process.pid, signal.SIGSTOP)  # a controller that does not listen now
    try:
        assert _answer(alice, row, signer="alice").status_code == 303
        waiting = _card(alice.client.get("/tasks").text, row.task_id)
        assert "signed by alice — waiting for the controller" in waiting
        assert "<form" not in waiting
        with open_site_store(line.db) as store:  # her training ends before it takes it up
            carol = authenticate(store, "carol", password("carol"), purpose="t", terminal=TERMINAL)
            revoke_training(store, carol, "alice", parse_subject(LIVE_SUBJECT), reason="test")
    finally:
        os.kill(line.run.process.pid, signal.SIGCONT)
    wait_for(lambda: line.status(row.task_id) == "open/perform", "the controller's refusal")
    card = _card(alice.client.get("/tasks").text, row.task_id)
    assert "refused by the controller: " in card and "training" in card
    assert "Not yours: not trained on web-live@1" in card


def test_refused_answers_render_with_the_reason_and_are_journaled(line: Line) -> None:
    connect = line.task("connect feed bag")
    alice, olga = line.browser("alice"), line.browser("olga")
    untrained = _answer(olga, connect, signer="olga")
    assert untrained.status_code == 403
    assert "web-live" in untrained.text and 'role="alert"' in untrained.text
    assert _refusals(line.db)[-1].cause == "training"
    missing = alice.post("/tasks/NOSUCH99/answer", {"password": password("alice")})
    assert missing.status_code == 404
    assert (_refusals(line.db)[-1].cause, _refusals(line.db)[-1].task_id) == (
        "task_missing",
        "NOSUCH99",
    )
    assert _answer(alice, connect, signer="alice").status_code == 303
    weigh = line.task("bag weight")
    again = _answer(alice, connect)  # the page she answered from, posted twice
    assert again.status_code == 409
    assert _refusals(line.db)[-1].cause == "task_not_open"
    before = len(site_records(line.db))
    not_a_number = _answer(alice, weigh, value="eighty")
    assert not_a_number.status_code == 422
    assert "is not float" in not_a_number.text
    assert len(site_records(line.db)) == before  # bad input: nothing written
    assert _answer(alice, weigh, value="80.5").status_code == 303
    verify = line.task("bag weight", "verify")
    own = _answer(alice, verify, decision="verify")
    assert own.status_code == 403
    assert _refusals(line.db)[-1].cause == "self_verification"
    bob = line.browser("bob")
    before = len(site_records(line.db))
    no_reason = _answer(bob, verify, signer="bob", decision="reject")
    assert no_reason.status_code == 422
    assert "needs a reason" in no_reason.text
    assert len(site_records(line.db)) == before
    stale = _answer(bob, verify, signer="bob", decision="verify", phase="perform")
    assert stale.status_code == 409
    assert _refusals(line.db)[-1].cause == "task_not_open"
