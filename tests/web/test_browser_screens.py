"""The README's screenshots of the web app, taken by the test suite in Debian's Chromium:
the line overview with a run in progress beside finished CAR-T and NK batches, and the run
page of the run in progress after its first 12 hours of culture.

With ``CELLAUTO_UPDATE_SCREENSHOTS=1`` they replace docs/img/web-overview.png and
docs/img/web-run.png (they show today's date, so they are not rewritten on every run);
otherwise they are written to the test's folder and only checked to be real pictures."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from cellauto.sim import simulate
from tests.browser import CHROMIUM, launch
from tests.web.harness import LiveRun, Server, sign_in

sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium")

IMAGES = Path(__file__).resolve().parents[2] / "docs" / "img"
PROTOCOLS = Path(__file__).resolve().parents[2] / "protocols"


def test_screenshots_of_the_overview_and_the_run_page(
    staffed_template: Path, tmp_path: Path
) -> None:
    db = tmp_path / "line.db"
    shutil.copyfile(staffed_template, db)
    simulate(PROTOCOLS / "car_t_autologous.py", seed=1, db=db, patient="typical")
    simulate(PROTOCOLS / "nk_expansion.py", seed=2, db=db, patient="typical")
    run = LiveRun(db, tmp_path / "controller.log")
    server = Server(db, tmp_path / "server.log")
    shots = {"web-overview.png": tmp_path / "overview.png", "web-run.png": tmp_path / "run.png"}
    try:
        with sync_api.sync_playwright() as playwright:
            context = launch(playwright, tmp_path / "profile")
            try:
                page = context.new_page()
                sign_in(page, server.url, "alice")
                row = page.locator(f"#run-{run.run_id}")
                sync_api.expect(row).to_contain_text("connect", timeout=30_000)
                page.goto(f"{server.url}/?ended=all")  # the finished batches ran in 2026-01
                sync_api.expect(page.locator("tr.run")).to_have_count(3)
                page.screenshot(path=str(shots["web-overview.png"]))
                page.goto(f"{server.url}/runs/{run.run_id}")
                sync_api.expect(page.locator("svg:visible").first).to_be_visible(timeout=30_000)
                run_shot = {"x": 0, "y": 0, "width": 1280, "height": 1200}  # header to plots
                page.screenshot(path=str(shots["web-run.png"]), full_page=True, clip=run_shot)
            finally:
                context.close()
    finally:
        server.stop()
        run.stop()
    for name, shot in shots.items():
        assert shot.stat().st_size > 10_000, name
        if os.environ.get("CELLAUTO_UPDATE_SCREENSHOTS"):
            shutil.copyfile(shot, IMAGES / name)
