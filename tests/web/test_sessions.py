"""The journal's account of web sessions stays true: sessions a stopped server left open
are closed at the next start, idle and over-age sessions are closed by the sweep without
waiting for a request, and stopping the server closes those still open."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import httpx
import pytest
from starlette.testclient import TestClient

from cellauto.records.site_payload_base import Terminal
from cellauto.records.site_payloads import SessionClosed, SessionOpened
from cellauto.site.auth import authenticate, open_session
from cellauto.site.store import open_site_store
from cellauto.web.app import create_app
from cellauto.web.config import WebConfig
from cellauto.web.security import web_terminal
from cellauto.web.session_sweep import close_orphaned_sessions, sweep_sessions
from tests.site.conftest import own_password
from tests.web.conftest import Browser, site_records
from tests.web.harness import REPO


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _open_web_session(db: Path, name: str, terminal: Terminal) -> str:
    with open_site_store(db) as store:
        who = authenticate(store, name, own_password(name), purpose="test", terminal=terminal)
        return open_session(store, who, purpose="web app").id


def _closed(db: Path) -> list[tuple[str, str, str]]:
    return [
        (p.session_id, p.name, p.cause) for p in site_records(db) if isinstance(p, SessionClosed)
    ]


def test_sessions_of_a_stopped_server_are_closed_at_the_next_start(journal: Path) -> None:
    here = web_terminal("10.0.0.7")
    dead = _open_web_session(journal, "ann", here.model_copy(update={"pid": _dead_pid()}))
    alive = _open_web_session(journal, "olga", here.model_copy(update={"pid": os.getppid()}))
    elsewhere = _open_web_session(
        journal, "sam", here.model_copy(update={"host": "another-host", "pid": _dead_pid()})
    )
    with TestClient(create_app(WebConfig(db=journal))):
        pass
    closed = _closed(journal)
    assert (dead, "ann", "exit") in closed
    assert {alive, elsewhere}.isdisjoint(c[0] for c in closed)
    (record,) = [p for p in site_records(journal) if isinstance(p, SessionClosed)]
    assert record.by == "system" and "stopped" in record.reason
    with open_site_store(journal) as store:
        assert close_orphaned_sessions(store) == []  # once only


def test_the_sweep_closes_idle_and_over_age_sessions(journal: Path) -> None:
    app = create_app(WebConfig(db=journal, max_session_h=1))
    with TestClient(app) as client:
        first, second = Browser(client), Browser(TestClient(app))
        first.sign_in("ann")
        second.sign_in("olga")
        services = app.state.services
        by_name = {w.account: w for w in services.sessions.open_sessions()}
        by_name["ann"].session.last_use_monotonic -= by_name["ann"].session.idle_s + 1
        by_name["olga"].session.opened_wall_ns -= int(2 * 3600e9)
        anyio.run(lambda: sweep_sessions(services, once=True))
        assert services.sessions.open_sessions() == []
    causes = {name: cause for _, name, cause in _closed(journal)}
    assert causes == {"ann": "idle", "olga": "exit"}


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM")
def test_stopping_the_server_closes_its_open_sessions(journal: Path) -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "cellauto", "serve", "--db", str(journal), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip().split(" ", 1)[1]
        with httpx.Client(base_url=url) as client:
            page = client.get("/login")
            token = page.text.split('name="csrf_login" value="', 1)[1].split('"', 1)[0]
            form = {"csrf_login": token, "name": "ann", "password": own_password("ann")}
            signed = client.post("/login", data=form, headers={"origin": url})
            assert signed.status_code == 303
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    opened = [p for p in site_records(journal) if isinstance(p, SessionOpened)]
    assert [(c[1], c[2]) for c in _closed(journal)] == [("ann", "exit")]
    assert opened[-1].session_id == _closed(journal)[0][0]
