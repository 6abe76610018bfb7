"""What every response carries, pages, refusals and static files alike, and what the
server log keeps of refusals that identify nobody."""

from __future__ import annotations

import logging

import pytest
from starlette.testclient import TestClient

from cellauto.web.context import RefusalLog
from tests.web.conftest import ORIGIN, Browser

STRICT = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def test_every_kind_of_response_carries_the_security_headers(
    client: TestClient, browser: Browser
) -> None:
    browser.sign_in("ann")
    responses = [
        client.get("/login"),
        client.get("/"),
        client.get("/static/app.css"),
        client.get("/no-such-page"),
        client.post("/logout", data={"csrf": "forged"}, headers=ORIGIN),
    ]
    assert [r.status_code for r in responses] == [200, 200, 200, 404, 403]
    for response in responses:
        assert response.headers["content-security-policy"] == STRICT
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "same-origin"
        assert "strict-transport-security" not in response.headers  # plain HTTP here


def test_pages_hold_no_inline_script_or_style(client: TestClient, browser: Browser) -> None:
    browser.sign_in("ann")
    for path in ("/login", "/"):
        html = client.get(path).text
        assert "<script>" not in html and " style=" not in html and " onclick=" not in html


def test_a_flood_of_refusals_is_logged_within_a_limit(caplog: pytest.LogCaptureFixture) -> None:
    log = RefusalLog(limit=3, window_s=3600)
    with caplog.at_level(logging.WARNING, logger="cellauto.web.context"):
        written = [log.warn("refused %s", n) for n in range(10)]
    assert written == [True] * 3 + [False] * 7
    assert len(caplog.records) == 3 and log.suppressed == 7
    log._start -= 3600  # the window has passed
    with caplog.at_level(logging.WARNING, logger="cellauto.web.context"):
        assert log.warn("refused %s", "again")
    assert (
        caplog.records[-1].getMessage() == "refused again (7 refusal(s) not logged before this one)"
    )
