"""What an outside review of the web app found, each kept from coming back: background
tasks that outlive any error, a journal that cannot take a session's end now, a
stranger's flood of sign-ins, a locked person's background reads, requests that must
not keep a session alive, a second sign-in in one browser, and the live-update failure
shown on the pages."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from starlette.testclient import TestClient

from cellauto.errors import JournalError
from cellauto.records.site_payloads import SessionClosed, SignInFailed
from cellauto.site import auth
from cellauto.site.accounts import change_status
from cellauto.site.store import open_site_store
from cellauto.web import session_sweep
from cellauto.web.session_sweep import sweep_once
from cellauto.web.throttle import MAX_FAILURES
from tests.site.chain import TERMINAL
from tests.site.conftest import ROOT_PASSWORD
from tests.web.conftest import ORIGIN, Browser, site_records


def _web(client: TestClient, name: str) -> object:
    (web,) = [w for w in client.app.state.sessions.open_sessions() if w.account == name]  # type: ignore[attr-defined]
    return web


def test_a_session_end_the_journal_cannot_take_now_is_journaled_later(
    client: TestClient, browser: Browser, journal: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    browser.sign_in("ann")
    web = _web(client, "ann")
    web.session.last_use_monotonic -= web.session.idle_s + 1  # type: ignore[attr-defined]
    real = session_sweep.close_session

    def busy(*args: object, **kwargs: object) -> object:
        raise JournalError("database is locked")

    monkeypatch.setattr(session_sweep, "close_session", busy)
    services = client.app.state.services  # type: ignore[attr-defined]
    anyio.run(lambda: session_sweep.sweep_sessions(services, once=True))  # survives
    assert client.get("/", follow_redirects=False).status_code == 303  # closed already
    assert web in services.sessions.open_sessions()  # kept until its end is journaled
    assert not [p for p in site_records(journal) if isinstance(p, SessionClosed)]
    monkeypatch.setattr(session_sweep, "close_session", real)
    anyio.run(lambda: sweep_once(services))
    assert services.sessions.open_sessions() == []
    closed = [p for p in site_records(journal) if isinstance(p, SessionClosed)]
    assert [(p.name, p.cause) for p in closed] == [("ann", "idle")]


def test_a_flood_of_failed_sign_ins_from_one_address_waits_unjournaled(
    browser: Browser, journal: Path
) -> None:
    for _ in range(MAX_FAILURES):
        assert browser.sign_in("ann", "not her password").status_code in (401, 403)
    before = len(site_records(journal))
    flooded = browser.sign_in("olga")  # even the right password waits now
    assert flooded.status_code == 429 and "Too many failed sign-ins" in flooded.text
    assert len(site_records(journal)) == before  # no password checked, nothing journaled
    failed = [p for p in site_records(journal) if isinstance(p, SignInFailed)]
    assert len(failed) == MAX_FAILURES


def test_a_locked_person_reads_nothing_more_not_even_in_the_background(
    client: TestClient, browser: Browser, journal: Path
) -> None:
    browser.sign_in("ann")
    assert client.get("/tasks/cards").status_code == 200
    with open_site_store(journal) as store:
        root = auth.authenticate(store, "root", ROOT_PASSWORD, purpose="t", terminal=TERMINAL)
        change_status(store, root, "ann", "locked", reason="left the company")
    background = client.get(
        "/tasks/cards", headers={"x-cellauto-background": "1"}, follow_redirects=False
    )
    assert background.status_code == 303 and background.headers["location"] == "/login"
    closed = [p for p in site_records(journal) if isinstance(p, SessionClosed)]
    assert [(p.name, p.cause) for p in closed] == [("ann", "lock")]


def test_requests_refused_or_sent_by_another_site_do_not_keep_a_session_alive(
    client: TestClient, browser: Browser
) -> None:
    browser.sign_in("ann")
    web = _web(client, "ann")
    token = browser.csrf()
    web.session.last_use_monotonic -= 100  # type: ignore[attr-defined]
    used = web.session.last_use_monotonic  # type: ignore[attr-defined]
    client.post("/logout", data={"csrf": "forged"}, headers=ORIGIN)
    client.post("/logout", data={"csrf": token}, headers={"origin": "http://evil.example"})
    client.get("/tasks", headers={"sec-fetch-site": "same-site"})  # a page on another port
    client.get("/tasks/cards", headers={"x-cellauto-background": "1"})
    assert web.session.last_use_monotonic == used  # type: ignore[attr-defined]
    client.get("/tasks", headers={"sec-fetch-site": "same-origin"})
    assert web.session.last_use_monotonic > used  # type: ignore[attr-defined]


def test_signing_in_again_in_one_browser_ends_the_earlier_session(
    client: TestClient, browser: Browser, journal: Path
) -> None:
    browser.sign_in("ann")
    browser.sign_in("olga")
    assert [w.account for w in client.app.state.sessions.open_sessions()] == ["olga"]  # type: ignore[attr-defined]
    closed = [p for p in site_records(journal) if isinstance(p, SessionClosed)]
    assert [(p.name, p.cause) for p in closed] == [("ann", "exit")]


def test_the_pages_say_when_live_updates_have_stopped(client: TestClient, browser: Browser) -> None:
    browser.sign_in("ann")
    hub = client.app.state.services.hub  # type: ignore[attr-defined]
    client.portal.call(hub.stop)  # type: ignore[union-attr]  # its next good read clears a failure
    hub.failure = "DatabaseError: file is not a database"
    page = client.get("/")
    assert "Live updates have stopped" in page.text and "not a database" in page.text
    hub.failure = None
    assert "Live updates have stopped" not in client.get("/").text


def test_a_closed_session_leaves_no_answers_behind(client: TestClient, browser: Browser) -> None:
    browser.sign_in("ann")
    web = _web(client, "ann")
    services = client.app.state.services  # type: ignore[attr-defined]
    given = object()  # an answer as the inbox keeps it (its content does not matter here)
    services.task_answers.add(web.session.id, given)  # type: ignore[attr-defined]
    assert services.task_answers.sessions() == 1
    browser.post("/logout")
    assert services.task_answers.sessions() == 0
