"""Signing in in a real browser (Debian's Chromium under Playwright) against
``cellauto serve`` on a journal with a run in progress: a wrong password is refused on
the page, the right one shows the line with the run; signing out returns to sign-in.
Each act is in the journal with the browser's address."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cellauto.records.site_payloads import SessionClosed, SessionOpened, SignInFailed
from tests.browser import CHROMIUM, launch
from tests.web.conftest import site_records
from tests.web.harness import password, sign_in

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium")


def test_sign_in_see_the_line_and_sign_out(
    live_line: tuple[Path, Any, Any], tmp_path: Path
) -> None:
    db, run, server = live_line
    with sync_api.sync_playwright() as playwright:
        context = launch(playwright, tmp_path / "profile")
        try:
            page = context.new_page()
            page.goto(f"{server.url}/")
            assert page.url == f"{server.url}/login"
            page.fill("input[name=name]", "alice")
            page.fill("input[name=password]", "not her password")
            page.click("button[type=submit]")
            sync_api.expect(page.get_by_role("alert")).to_contain_text("wrong")
            sign_in(page, server.url, "alice")
            sync_api.expect(page.locator("header .who")).to_contain_text("(alice)")
            sync_api.expect(page.locator("main")).to_contain_text(run.run_id[:12])
            page.click("form.signout button")
            page.wait_for_url(f"{server.url}/login")
        finally:
            context.close()
    records = site_records(db)
    failed = [p for p in records if isinstance(p, SignInFailed)]
    assert [(p.name_given, p.terminal.remote_address) for p in failed] == [("alice", "127.0.0.1")]
    opened = [p for p in records if isinstance(p, SessionOpened) and p.purpose == "web app"]
    assert [(p.name, p.terminal.remote_address) for p in opened] == [("alice", "127.0.0.1")]
    closed = [p for p in records if isinstance(p, SessionClosed) and p.name == "alice"]
    assert [p.cause for p in closed] == ["exit"]
    assert password("alice")  # the harness's passwords are the site tests' own
