"""What the server enforces, walked route by route from the route table: every
state-changing request without a session, with a wrong CSRF token, from another origin,
or from a person whose role may not act is refused, and nothing of the act is written
(a role refusal writes exactly one ``signature_refused``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from cellauto.records.site_payloads import SignatureRefused
from cellauto.site.roles import Permission, permissions_of
from cellauto.web.routes_table import RouteSpec, all_routes
from tests.web.conftest import ORIGIN, STAFF, Browser, site_records

POSTS = [spec for spec in all_routes() if spec.method == "POST"]


def _url(spec: RouteSpec) -> str:
    """The route's path with every parameter filled in (nothing exists by that name)."""
    return re.sub(r"\{([a-z_]+)(:[a-z]+)?\}", "no-such-1", spec.path)


def _ids(spec: RouteSpec) -> str:
    return spec.path


def test_only_the_sign_in_form_is_public() -> None:
    public = [(s.method, s.path) for s in all_routes() if s.access == "public"]
    assert public == [("GET", "/login"), ("POST", "/login")]


@pytest.mark.parametrize("spec", [s for s in POSTS if s.access != "public"], ids=_ids)
def test_a_post_without_a_session_is_refused_and_writes_nothing(
    spec: RouteSpec, client: TestClient, journal: Path
) -> None:
    before = len(site_records(journal))
    refused = client.post(_url(spec), data={"csrf": "x"}, headers=ORIGIN, follow_redirects=False)
    assert refused.status_code == 401
    assert len(site_records(journal)) == before


@pytest.mark.parametrize("spec", [s for s in POSTS if s.access != "public"], ids=_ids)
def test_a_post_with_a_wrong_token_or_origin_is_refused_and_writes_nothing(
    spec: RouteSpec, browser: Browser, journal: Path
) -> None:
    browser.sign_in("ann")
    before = len(site_records(journal))
    token = browser.csrf()
    url = _url(spec)
    wrong = browser.client.post(url, data={"csrf": "forged"}, headers=ORIGIN)
    missing = browser.client.post(url, data={}, headers=ORIGIN)
    elsewhere = browser.client.post(
        url, data={"csrf": token}, headers={"origin": "http://evil.example"}
    )
    assert [r.status_code for r in (wrong, missing, elsewhere)] == [403, 403, 403]
    assert len(site_records(journal)) == before


@pytest.mark.parametrize("spec", [s for s in POSTS if isinstance(s.access, Permission)], ids=_ids)
def test_a_post_by_a_role_that_may_not_is_refused_and_journaled_once(
    spec: RouteSpec, browser: Browser, journal: Path
) -> None:
    # a person of the line whose role lacks the permission (an administrator, who acts on
    # no batch, lot or instrument, only where every role of the line holds it)
    assert isinstance(spec.access, Permission)
    lacking = [name for name, role in STAFF if spec.access not in permissions_of([role])]
    who = lacking[0] if lacking else "root"
    browser.sign_in(who)
    before = len(site_records(journal))
    refused = browser.post(_url(spec), {"password": "not even checked"})
    assert refused.status_code == 403
    new = site_records(journal)[before:]
    assert [type(p) for p in new] == [SignatureRefused]
    (record,) = new
    assert isinstance(record, SignatureRefused)
    assert (record.name, record.cause) == (who, "permission")
    assert record.terminal.remote_address == "testclient"


def test_every_page_but_sign_in_sends_a_stranger_to_sign_in(client: TestClient) -> None:
    for spec in all_routes():
        if spec.method == "GET" and spec.access != "public":
            away = client.get(_url(spec), follow_redirects=False)
            assert (away.status_code, away.headers["location"]) == (303, "/login"), spec.path
