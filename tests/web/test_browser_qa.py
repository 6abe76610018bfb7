"""QA in a real browser (Debian's Chromium under Playwright) against ``cellauto serve`` on
a batch ready for release (tests/web/qa_batch.py; no live run needed).

Scenario 6: an operator sees no Release button, and the release form posted anyway with
her own session and token is refused (403) before any password is checked: one
``signature_refused`` (cause ``permission``), nothing disposed, no failed sign-in.
Scenario 7: QA checks (nothing stands against release) and releases with user name and
password; the decision is in the journal with its signature and the browser's address,
and ``cellauto verify`` passes.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cellauto.records.refs import Meaning
from cellauto.records.site_payloads import Signature, SignatureRefused, SignInFailed
from cellauto.records.site_payloads_review import BatchDisposed
from tests.browser import CHROMIUM, launch
from tests.web.conftest import site_records
from tests.web.harness import REPO, Server, password, sign_in
from tests.web.qa_batch import Ready, batch_template, ready, ready_template

__all__ = ["batch_template", "ready", "ready_template"]  # fixtures

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium")


@pytest.fixture
def served(ready: Ready, tmp_path: Path) -> Iterator[tuple[Ready, Server]]:
    server = Server(ready.path, tmp_path / "server.log")
    try:
        yield ready, server
    finally:
        server.stop()


def _page(playwright: Any, profile: Path, url: str, name: str) -> tuple[Any, Any]:
    context = launch(playwright, profile)
    page = context.new_page()
    sign_in(page, url, name)
    return context, page


def test_an_operator_is_refused_a_release(served: tuple[Ready, Server], tmp_path: Path) -> None:
    ready, server = served
    before = len(site_records(ready.path))
    with sync_api.sync_playwright() as playwright:
        context, page = _page(playwright, tmp_path / "profile", server.url, "alice")
        try:
            page.goto(f"{server.url}/runs/{ready.run_id}/release")
            sync_api.expect(page.locator("#disposition")).to_contain_text("Not dispositioned")
            sync_api.expect(page.get_by_role("button", name="Release")).to_have_count(0)
            token = page.locator("meta[name=csrf-token]").get_attribute("content")
            answer = page.request.post(
                f"{server.url}/runs/{ready.run_id}/release",
                form={
                    "csrf": token,
                    "decision": "release",
                    "signer": "alice",
                    "password": password("alice"),
                },
                headers={"Origin": server.url},
                max_redirects=0,
            )
            assert answer.status == 403, answer.text()
            assert "may not release" in answer.text()
        finally:
            context.close()
    new = site_records(ready.path)[before:]
    refused = [p for p in new if isinstance(p, SignatureRefused)]
    assert [(p.name, p.cause, p.run_id) for p in refused] == [("alice", "permission", ready.run_id)]
    assert refused[0].terminal.remote_address == "127.0.0.1"
    assert not [p for p in new if isinstance(p, BatchDisposed | SignInFailed)]


def test_qa_checks_and_releases_the_batch(served: tuple[Ready, Server], tmp_path: Path) -> None:
    ready, server = served
    with sync_api.sync_playwright() as playwright:
        context, page = _page(playwright, tmp_path / "profile", server.url, "quinn")
        try:
            page.goto(f"{server.url}/runs/{ready.run_id}/release")
            sync_api.expect(page.locator("#problems")).to_have_count(0)  # no check on load
            page.get_by_role("button", name="Check").click()
            sync_api.expect(page.locator("#problems")).to_contain_text(
                "nothing stands against release", timeout=30_000
            )
            form = page.locator("#decide form")
            form.locator("input[name=signer]").fill("quinn")
            form.locator("input[name=password]").fill(password("quinn"))
            form.get_by_role("button", name="Release").click()
            sync_api.expect(page.locator("#disposition")).to_contain_text(
                "released by quinn", timeout=30_000
            )
            sync_api.expect(page.locator(".flash")).to_contain_text("released by quinn")
            sync_api.expect(page.get_by_role("button", name="Release")).to_have_count(0)
        finally:
            context.close()
    records = site_records(ready.path)
    (disposed,) = [p for p in records if isinstance(p, BatchDisposed)]
    assert (disposed.by, disposed.decision) == ("quinn", "released")
    assert disposed.terminal.remote_address == "127.0.0.1"
    (signature,) = [
        p for p in records if isinstance(p, Signature) and p.meaning == Meaning.RELEASED
    ]
    assert (signature.signer, signature.components) == ("quinn", "user_id+password")
    assert signature.terminal.remote_address == "127.0.0.1"
    verified = subprocess.run(
        [sys.executable, "-m", "cellauto", "verify", "--db", str(ready.path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert re.search(r"released by quinn", verified.stdout), verified.stdout
