"""The whole path of a batch from its excursion to its release, through the command line.

A simulated CAR-T batch with a 39.9 °C culture excursion (restarted) ends Complete with
one deviation. Release is refused for each missing piece in turn — the open deviation,
the QC results, a hand-entered result's second-person check — each time naming exactly
what is left, then granted. The batch record of the released batch shows the exception
first, the excursion marked on the culture plot, every signature, and a PDF whose first
page is not blank. With ``CELLAUTO_UPDATE_SCREENSHOTS=1`` its first screen in Chromium
becomes the README's screenshot (docs/img/batch-record.png; it shows today's release
date, so it is not rewritten on every run).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from contextlib import closing
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from cellauto.records import Journal
from cellauto.records.verify import verify_journal
from cellauto.review.report.model import SECTIONS
from cellauto.site.replay import replay_problem
from tests.browser import CHROMIUM
from tests.cli.people import People, own
from tests.raw_sql import raw_connect
from tests.review.conftest import Batch, batch, batch_template
from tests.site.conftest import cli

from .test_report_browser import SCREENSHOT, screenshot

__all__ = ["batch", "batch_template", "cli"]  # fixtures

QC_TESTS = {
    "sterility",
    "endotoxin",
    "mycoplasma",
    "vector copy number",
    "identity (CAR+)",
    "viability",
    "post-thaw viability",
    "cell count",
}


@pytest.fixture
def people(cli, batch: Batch, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> People:  # type: ignore[no-untyped-def]
    return People(cli, batch.path, monkeypatch, tmp_path)


def _as(people: People, who: str, *argv: object) -> tuple[int, str, str]:
    done = people(*argv, "--as", who, stdin=[own(who)])
    return done.code, done.out, done.err


def _left(people: People, run_id: str) -> list[tuple[str, str]]:
    """What `release --check` says stands against the release: (code, subject)."""
    done = people("release", run_id, "--check", "--json")
    assert done.code in (0, 3), done.err
    return sorted((p["code"], p["subject"]) for p in json.loads(done.out))


class _Sections(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs).get("id")
        if found:
            self.ids.append(found)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_car_t_excursion_to_release(people: People, batch: Batch, tmp_path: Path) -> None:
    run_id = batch.run_id
    deviation = f"DEV-{run_id[:12]}-01"
    missing = [("qc_missing", test) for test in sorted(QC_TESTS)]
    assert _left(people, run_id) == sorted([("deviation_open", deviation), *missing])

    # the deviation: a supervisor may not close it; QA classifies; closing a major one
    # needs its investigation first; the supervisor investigates; QA closes with a CAPA
    code, _, err = _as(
        people,
        "sup.jones",
        "deviation",
        "close",
        deviation,
        "--conclusion",
        "no impact on the product found",
        "--capa",
        "CAPA-2026-0012",
    )
    assert code == 2 and "deviation.close" in err
    code, _, err = _as(
        people,
        "qa.smith",
        "deviation",
        "classify",
        deviation,
        "--class",
        "major",
        "--impact",
        "culture at 39.9 °C for 3 h during expansion; potency at risk",
    )
    assert code == 0, err
    code, _, err = _as(
        people,
        "qa.smith",
        "deviation",
        "close",
        deviation,
        "--conclusion",
        "no impact on the product found",
        "--capa",
        "CAPA-2026-0012",
    )
    assert code == 2 and "investigat" in err
    code, _, err = _as(
        people,
        "sup.jones",
        "deviation",
        "investigate",
        deviation,
        "--root-cause",
        "heater controller overshoot after a door opening",
        "--category",
        "equipment",
        "--product-impact",
        "none",
        "--impact-detail",
        "viability and expansion within the usual range",
    )
    assert code == 0, err
    code, _, err = _as(
        people,
        "qa.smith",
        "deviation",
        "close",
        deviation,
        "--conclusion",
        "no impact on the product; heater retuned",
        "--capa",
        "CAPA-2026-0012",
    )
    assert code == 0, err
    assert _left(people, run_id) == missing

    # QC: the simulated laboratory's LIMS export (post-thaw viability left out), imported
    code, _, err = _as(people, "qa.smith", "qc", "schema", "define", "sim-lims", "--builtin", "sim")
    assert code == 0, err
    export = tmp_path / "lims.csv"
    done = people("sim", "qc", run_id, "--out", export, "--fault", "post-thaw viability:missing")
    assert done.code == 0, done.err
    code, _, err = _as(people, "lab.chen", "qc", "import", run_id, export, "--schema", "sim-lims")
    assert code == 0, err
    assert _left(people, run_id) == [("qc_missing", "post-thaw viability")]

    # the missing result entered by hand: not counted until another person verifies it
    with closing(raw_connect(batch.path)) as conn:
        (din,) = conn.execute(
            "SELECT din || flag FROM containers WHERE run_id = ? AND key = 'QC sample'", (run_id,)
        ).fetchone()
    code, out, err = _as(
        people,
        "lab.chen",
        "qc",
        "add",
        run_id,
        "--test",
        "post-thaw viability",
        "--value",
        "76.5",
        "--sample",
        "S-PTV-1",
        "--din",
        din,
        "--method",
        "trypan blue, thawed vial",
        "--analyst",
        "L. Chen",
        "--tested-on",
        "2026-01-25",
        "--instrument",
        "COUNTER-3",
    )
    assert code == 0, err
    result_id = f"QC-{run_id[:12]}-post-thaw-viability-01"
    assert _left(people, run_id) == [("qc_unverified", "post-thaw viability")]
    code, _, err = _as(people, "lab.chen", "qc", "verify", result_id)
    assert code == 2  # never one's own entry
    code, _, err = _as(people, "lab.ito", "qc", "verify", result_id)
    assert code == 0, err
    assert _left(people, run_id) == []

    # released by QA, once
    code, out, err = _as(people, "qa.lee", "release", run_id, "--decision", "release")
    assert code == 0, err
    assert "released by qa.lee" in out and "SIMULATION" in out
    assert _left(people, run_id) == [("already_disposed", "disposition")]
    with Journal(batch.path, create=False) as journal:
        report = verify_journal(journal, site_replay=replay_problem)
    assert report.intact, report

    verified = people("verify")
    assert verified.code == 0, verified.out
    assert "review: 1 deviation(s) (1 closed), 8/8 QC results, released by qa.lee" in verified.out
    shown = people("show", run_id)
    assert shown.code == 0, shown.err
    after = shown.out[shown.out.index("review and release (site records") :]
    assert deviation in after and "CAPA-2026-0012" in after and result_id in after
    assert "BATCH RELEASED by qa.lee" in after.splitlines()[-1]

    # the batch record
    out_dir = tmp_path / "record"
    done = people("report", run_id, "--out", out_dir, "--generated-at", "2026-02-01T09:00:00Z")
    assert done.code == 0, done.err
    html = (out_dir / "batch-record.html").read_text(encoding="utf-8")
    parsed = _Sections()
    parsed.feed(html)
    sections = re.findall(r'<section id="([^"]+)"', html)
    assert sections == [section for section, _ in SECTIONS]
    assert sections[:2] == ["header", "review"]  # the exceptions first, after the header
    text = " ".join(parsed.text)
    for name in (
        "Qa.Lee Tester",
        "Qa.Smith Tester",
        "Sup.Jones Tester",
        "Lab.Chen Tester",
        "Lab.Ito Tester",
    ):
        assert name in text, name
    assert "CAPA-2026-0012" in text and result_id in text
    assert any(i.startswith(f"marker-{deviation}") for i in parsed.ids), "excursion not marked"
    pdfium = pytest.importorskip("pypdfium2")
    pdf = pdfium.PdfDocument(str(out_dir / "batch-record.pdf"))
    pixels = np.asarray(pdf[0].render(scale=1).to_pil().convert("L"))
    assert (pixels < 200).mean() > 0.01  # page 1 is not blank
    first_page = pdf[0].get_textpage().get_text_range()
    assert "Review by exception" in first_page or "review by exception" in first_page.lower()
    assert deviation in "".join(page.get_textpage().get_text_range() for page in pdf)
    if CHROMIUM.exists():  # the README's screenshot: this released batch's first screen
        shot = tmp_path / "batch-record.png"
        screenshot(out_dir / "batch-record.html", tmp_path / "profile", shot)
        assert shot.stat().st_size > 10_000
        if os.environ.get("CELLAUTO_UPDATE_SCREENSHOTS"):  # the release date is today's
            shutil.copyfile(shot, SCREENSHOT)
