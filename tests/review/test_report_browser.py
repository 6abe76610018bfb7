"""The HTML batch record in a real browser: Debian's Chromium under Playwright (never a
downloaded browser). Every section is visible and nothing fails to load. (The README's
screenshot is taken of a released batch, by tests/review/test_release_path.py.)"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cellauto.records import Journal
from cellauto.review.report import write_report
from cellauto.review.report.model import SECTIONS
from tests.browser import CHROMIUM, FLAGS

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "img" / "batch-record.png"

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium")


def test_every_section_is_visible_in_chromium(
    batch_template: tuple[Path, str], tmp_path: Path
) -> None:
    source, run_id = batch_template
    path = tmp_path / "batch.db"
    shutil.copyfile(source, path)
    with Journal(path, create=False) as journal:
        (html,) = write_report(
            journal,
            run_id,
            tmp_path / "out",
            generated_at=datetime(2026, 2, 1, 9, tzinfo=UTC),
            pdf=False,
        )
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),  # a fresh profile (DESIGN.md: Chromium as root)
            executable_path=str(CHROMIUM),
            headless=True,
            args=FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            page = context.new_page()
            failed: list[str] = []
            page.on("requestfailed", lambda request: failed.append(request.url))
            page.goto(html.as_uri())
            for key, title in SECTIONS:
                section = page.locator(f"section#{key}")
                section.scroll_into_view_if_needed()
                assert section.is_visible(), key
                if key != "header":
                    assert section.locator("h2").inner_text() == title
            assert page.locator("#plot-conditions svg").is_visible()
            assert not failed
        finally:
            context.close()


def screenshot(html: Path, profile: Path, out: Path) -> None:
    """The first screen of the HTML batch record in Chromium, saved as a PNG."""
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            page = context.new_page()
            page.goto(html.as_uri())
            page.evaluate("window.scrollTo(0, 0)")
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out))
        finally:
            context.close()
