"""``cellauto serve --behind-proxy ADDR``: behind an HTTPS reverse proxy, the forms of the
public origin are accepted, the browser's address (not the proxy's) is journaled, and the
cookies are ``__Host-`` and ``Secure``; forwarded headers from anyone else stay ignored."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from cellauto.cli import main
from cellauto.records.site_payloads import SessionOpened
from tests.site.conftest import own_password
from tests.web.conftest import site_records
from tests.web.harness import REPO

PUBLIC = "line1.plant.example"
FORWARDED = {"host": PUBLIC, "x-forwarded-for": "10.20.30.40", "x-forwarded-proto": "https"}


def _serve(journal: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    args = ["serve", "--db", str(journal), "--port", "0", *extra]
    server = subprocess.Popen(
        [sys.executable, "-m", "cellauto", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert server.stdout is not None
    return server, server.stdout.readline().strip().split(" ", 1)[1]


def _sign_in(url: str) -> httpx.Response:
    """Sign ann in as the proxy would pass it on (the cookies handed over by hand: the
    proxy's leg is plain HTTP, and a client keeps ``Secure`` cookies for HTTPS only)."""
    with httpx.Client(base_url=url) as client:
        page = client.get("/login", headers=FORWARDED)
        (pre,) = [v for k, v in page.headers.multi_items() if k == "set-cookie"]
        token = page.text.split('name="csrf_login" value="', 1)[1].split('"', 1)[0]
        form = {"csrf_login": token, "name": "ann", "password": own_password("ann")}
        headers = {**FORWARDED, "origin": f"https://{PUBLIC}", "cookie": pre.split(";")[0]}
        return client.post("/login", data=form, headers=headers)


def test_behind_the_named_proxy_the_browser_address_is_journaled(journal: Path) -> None:
    server, url = _serve(journal, "--behind-proxy", "127.0.0.1")
    try:
        signed = _sign_in(url)
    finally:
        server.terminate()
        server.wait(timeout=60)
    assert signed.status_code == 303, signed.text
    cookie = signed.headers["set-cookie"]
    assert cookie.startswith("__Host-cellauto-session-443=") and "Secure" in cookie
    assert signed.headers["strict-transport-security"] == "max-age=31536000"
    (opened,) = [p for p in site_records(journal) if isinstance(p, SessionOpened)]
    assert opened.terminal.remote_address == "10.20.30.40"


def test_without_it_forwarded_headers_are_not_trusted(journal: Path) -> None:
    server, url = _serve(journal)
    try:
        signed = _sign_in(url)
    finally:
        server.terminate()
        server.wait(timeout=60)
    # the form claims the proxy's public https origin, which this server is not
    assert signed.status_code == 403
    assert not [p for p in site_records(journal) if isinstance(p, SessionOpened)]


def test_a_proxy_is_named_by_its_address(journal: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--db", str(journal), "--behind-proxy", "proxy.example"]) == 2
    assert "is not an IP address" in capsys.readouterr().err
