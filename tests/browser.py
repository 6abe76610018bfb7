"""Debian's Chromium under Playwright, for the tests that look at a page in a real browser
(never a downloaded browser: none can be fetched at run time). A test module that uses
it skips when Playwright or /usr/bin/chromium is missing; CI installs both."""

from __future__ import annotations

from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


HANG_MS = 60_000
"""How long a browser step may take before the test calls it a hang (never a measure: the
machine may be loaded, and Playwright's default of 5 s for an ``expect`` is too short)."""


def expect_patiently() -> None:
    """Make Playwright's ``expect`` wait up to :data:`HANG_MS` unless a test says otherwise."""
    from playwright.sync_api import expect

    expect.set_options(timeout=HANG_MS)


def launch(playwright: Any, profile: Path, **options: Any) -> Any:
    """A Chromium context with a fresh profile folder of its own (Chromium as root needs
    ``--no-sandbox``; a persistent context keeps nothing between tests). Its steps, and
    every ``expect``, wait up to :data:`HANG_MS`."""
    expect_patiently()
    options.setdefault("viewport", {"width": 1280, "height": 800})
    context = playwright.chromium.launch_persistent_context(
        str(profile), executable_path=str(CHROMIUM), headless=True, args=FLAGS, **options
    )
    context.set_default_timeout(HANG_MS)
    return context
