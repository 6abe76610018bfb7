"""Signing in to the web app: the site's own authentication and lockout, a session in
memory journaled with the browser's address, cookies that scripts and other sites cannot
use, and every POST refused unless it comes from this app's own page with its token."""

from __future__ import annotations

import re
from pathlib import Path

from starlette.testclient import TestClient

from cellauto.records.site_payloads import SessionClosed, SessionOpened, SignInFailed
from tests.site.conftest import own_password
from tests.web.conftest import ORIGIN, Browser, site_records


def _site_records(path: Path) -> list[object]:
    return list(site_records(path))


def _login_token(client: TestClient) -> str:
    return Browser(client).login_token()


def _sign_in(client: TestClient, name: str, password: str) -> object:
    return Browser(client).sign_in(name, password)


def test_a_sign_in_opens_a_journaled_session_in_a_strict_cookie(
    client: TestClient, journal: Path
) -> None:
    done = _sign_in(client, "ann", own_password("ann"))
    assert done.status_code == 303 and done.headers["location"] == "/"  # type: ignore[attr-defined]
    cookie = done.headers["set-cookie"]  # type: ignore[attr-defined]
    assert "cellauto-session-" in cookie and "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "samesite=strict" in cookie.lower()
    home = client.get("/")
    assert home.status_code == 200 and "Ann Tester (ann)" in home.text
    opened = [p for p in _site_records(journal) if isinstance(p, SessionOpened)][-1]
    assert (opened.name, opened.purpose) == ("ann", "web app")
    assert opened.terminal.remote_address == "testclient"


def test_a_wrong_password_is_journaled_and_the_third_locks(
    client: TestClient, journal: Path
) -> None:
    for _ in range(2):
        failed = _sign_in(client, "olga", "not her password")
        assert failed.status_code == 401  # type: ignore[attr-defined]
        assert "user name or the password is wrong" in failed.text  # type: ignore[attr-defined]
    third = _sign_in(client, "olga", "not her password")
    assert third.status_code in (401, 403)  # type: ignore[attr-defined]
    locked = _sign_in(client, "olga", own_password("olga"))
    # the same answer as a wrong password: nobody learns that the account exists or is
    # locked (the journal has the cause)
    assert locked.status_code == 401 and "may not sign in now" in locked.text  # type: ignore[attr-defined]
    assert "olga" not in locked.text  # type: ignore[attr-defined]
    failures = [p for p in _site_records(journal) if isinstance(p, SignInFailed)]
    assert len(failures) >= 3 and all(p.terminal.remote_address == "testclient" for p in failures)
    assert client.get("/", follow_redirects=False).status_code == 303


def test_nothing_but_the_sign_in_page_without_a_session(client: TestClient) -> None:
    for path in ("/", "/runs/abc", "/tasks"):
        away = client.get(path, follow_redirects=False)
        assert (away.status_code, away.headers["location"]) == (303, "/login")


def test_posts_from_elsewhere_or_without_the_token_are_refused(
    client: TestClient, journal: Path
) -> None:
    token = _login_token(client)
    form = {"csrf_login": token, "name": "ann", "password": own_password("ann")}
    other = {"origin": "http://evil.example"}
    assert client.post("/login", data=form, headers=other).status_code == 403
    assert client.post("/login", data=form).status_code == 403  # neither Origin nor Referer
    wrong = {**form, "csrf_login": "forged"}
    assert client.post("/login", data=wrong, headers=ORIGIN).status_code == 403
    assert not [p for p in _site_records(journal) if isinstance(p, SessionOpened)]
    _sign_in(client, "ann", own_password("ann"))
    home = client.get("/")
    csrf = re.search(r'name="csrf" value="([^"]+)"', home.text)
    assert csrf is not None
    assert client.post("/logout", data={"csrf": "forged"}, headers=ORIGIN).status_code == 403
    assert client.post("/logout", data={"csrf": csrf.group(1)}, headers=other).status_code == 403
    out = client.post(
        "/logout", data={"csrf": csrf.group(1)}, headers=ORIGIN, follow_redirects=False
    )
    assert (out.status_code, out.headers["location"]) == (303, "/login")
    closed = [p for p in _site_records(journal) if isinstance(p, SessionClosed)]
    assert [(p.name, p.cause) for p in closed] == [("ann", "exit")]
    assert client.get("/", follow_redirects=False).status_code == 303


def test_an_idle_session_is_closed_at_its_next_request(client: TestClient, journal: Path) -> None:
    _sign_in(client, "ann", own_password("ann"))
    (web,) = client.app.state.sessions._by_digest.values()  # type: ignore[attr-defined]
    web.session.last_use_monotonic -= web.session.idle_s + 1
    assert client.get("/", follow_redirects=False).status_code == 303
    closed = [p for p in _site_records(journal) if isinstance(p, SessionClosed)]
    assert [(p.name, p.cause) for p in closed] == [("ann", "idle")]
