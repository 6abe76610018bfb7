"""A signed act from the web: the password again in the form that signs, the user name
too at the session's first signature (signing in signs nothing), a wrong password
journaled and counted towards the lock, and the lock ending the web session."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.responses import PlainTextResponse, Response
from starlette.testclient import TestClient

from cellauto.records.site_payloads import SessionClosed, SignatureRefused, SignInFailed
from cellauto.records.site_store import SiteStore
from cellauto.site.auth import Authenticated
from cellauto.site.roles import Permission
from cellauto.web import app as web_app
from cellauto.web.acts import signed_act
from cellauto.web.app import create_app
from cellauto.web.config import WebConfig
from cellauto.web.context import Ctx
from cellauto.web.routes_table import RouteSpec, all_routes
from tests.site.conftest import own_password
from tests.web.conftest import Browser, site_records

SIGNED: list[Authenticated] = []


async def _hold(ctx: Ctx) -> Response:
    def act(store: SiteStore, who: Authenticated) -> str:
        SIGNED.append(who)
        return who.account.name

    name = await signed_act(ctx, "test act", act)
    return PlainTextResponse(f"signed by {name}")


@pytest.fixture
def signer(journal: Path, monkeypatch: pytest.MonkeyPatch) -> Browser:
    SIGNED.clear()
    test_route = RouteSpec("/test/sign", "POST", _hold, Permission.RUN_HOLD, "hold runs")
    monkeypatch.setattr(web_app, "all_routes", lambda: (*all_routes(), test_route))
    browser = Browser(TestClient(create_app(WebConfig(db=journal))))
    browser.sign_in("ann")
    return browser


def test_the_first_signature_needs_the_name_and_the_next_the_password_only(
    signer: Browser,
) -> None:
    password = own_password("ann")
    without_name = signer.post("/test/sign", {"password": password})
    assert without_name.status_code == 401 and "user name" in without_name.text
    as_other = signer.post("/test/sign", {"password": password, "signer": "olga"})
    assert as_other.status_code == 401 and not SIGNED
    first = signer.post("/test/sign", {"password": password, "signer": "ann"})
    assert (first.status_code, first.text) == (200, "signed by ann")
    second = signer.post("/test/sign", {"password": password})
    assert second.status_code == 200
    (web,) = signer.client.app.state.sessions.open_sessions()  # type: ignore[attr-defined]
    assert [w.components for w in SIGNED] == ["user_id+password", "password"]
    assert {w.session_id for w in SIGNED} == {web.session.id}
    assert {w.terminal.remote_address for w in SIGNED} == {"testclient"}


def test_no_password_no_signature(signer: Browser) -> None:
    refused = signer.post("/test/sign", {"signer": "ann"})
    assert refused.status_code == 401 and not SIGNED


def test_signatures_refused_before_the_password_are_journaled(
    signer: Browser, journal: Path
) -> None:
    since = len(site_records(journal))
    signer.post("/test/sign", {"signer": "ann"})  # no password
    signer.post("/test/sign", {"password": own_password("olga"), "signer": "olga"})
    refused = [p for p in site_records(journal)[since:] if isinstance(p, SignatureRefused)]
    assert [(p.name, p.cause) for p in refused] == [
        ("ann", "no_password"),
        ("ann", "signer_mismatch"),
    ]
    assert "not as 'olga'" in refused[1].detail
    assert {p.terminal.remote_address for p in refused} == {"testclient"}
    assert not [p for p in site_records(journal)[since:] if isinstance(p, SignInFailed)]


def test_wrong_passwords_are_journaled_and_the_lock_ends_the_session(
    signer: Browser, journal: Path
) -> None:
    for _ in range(3):
        wrong = signer.post("/test/sign", {"password": "not hers", "signer": "ann"})
        assert wrong.status_code in (401, 403)
    failed = [p for p in site_records(journal) if isinstance(p, SignInFailed)]
    assert [p.purpose for p in failed] == ["web: test act"] * 3
    closed = [p for p in site_records(journal) if isinstance(p, SessionClosed)]
    assert [(p.name, p.cause) for p in closed] == [("ann", "lock")]
    assert signer.client.get("/", follow_redirects=False).status_code == 303
    assert not SIGNED
