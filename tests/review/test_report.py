"""The batch record report of a simulated CAR-T batch with a temperature excursion: every
section, the exception first with a link that resolves, the deviation marked on the plot,
every signature printed, a PDF that is not blank, and the same bytes for the same time."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest

from cellauto.records import Journal
from cellauto.records.backend import Location
from cellauto.records.refs import Meaning, RecordRef
from cellauto.records.site_payloads_review import Classification, DeviationClassified
from cellauto.records.wording import signatures_of
from cellauto.review._acting import ReviewActing, check_actor, sign_act
from cellauto.review.read import runner_deviations
from cellauto.review.report import HTML_NAME, PDF_NAME, write_report
from cellauto.review.report.batch_record import build_batch_record
from cellauto.review.report.html import render_html
from cellauto.review.report.model import SECTIONS
from cellauto.site._acts import run_act
from cellauto.site.roles import Permission

from .conftest import Batch

pdfium = pytest.importorskip("pypdfium2")

AT = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)


class _Page(HTMLParser):
    """Ids (in order), internal links, the element ids under each figure, the text."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.hrefs: list[str] = []
        self.sections: list[str] = []
        self.scripts = 0
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        if attr.get("id"):
            self.ids.append(str(attr["id"]))
            if tag == "section":
                self.sections.append(str(attr["id"]))
        href = attr.get("href")
        if tag == "a" and href and href.startswith("#"):
            self.hrefs.append(href[1:])
        self.scripts += tag == "script"

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


@dataclass
class Written:
    path: Path
    run_id: str
    html: str
    pdf: bytes


@pytest.fixture(scope="module")
def written(
    batch_template: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Written]:
    source, run_id = batch_template
    folder = tmp_path_factory.mktemp("report")
    path = folder / "batch.db"
    shutil.copyfile(source, path)
    with Journal(path, create=False) as journal:
        html_path, pdf_path = write_report(journal, run_id, folder / "out", generated_at=AT)
    yield Written(path, run_id, html_path.read_text("utf-8"), pdf_path.read_bytes())


def _deviation_id(run_id: str) -> str:
    return f"DEV-{run_id[:12]}-01"


def test_every_section_in_order_and_every_link_resolves(written: Written) -> None:
    page = _parse(written.html)
    assert page.sections == [key for key, _ in SECTIONS]
    assert len(page.ids) == len(set(page.ids)), "an id is placed twice"
    assert set(page.hrefs) <= set(page.ids)
    assert page.scripts == 0
    assert written.html.startswith('<!doctype html>\n<html lang="en">')


def test_the_runners_deviation_is_the_first_review_item(written: Written) -> None:
    page = _parse(written.html)
    review = written.html[written.html.index('<section id="review">') :]
    review = review[: review.index("</section>")]
    first_link = _parse(review).hrefs[0]
    assert first_link == _deviation_id(written.run_id)
    assert first_link in page.ids
    assert "blocks release" in review
    # the excursion's failed check and the hold and restart are listed, each linked
    for expected in ("failed check", "Running → Holding", "Held → Restarting"):
        assert expected in review


def test_the_temperature_plot_marks_the_deviation(written: Written) -> None:
    figure = written.html[written.html.index('<figure id="plot-conditions">') :]
    figure = figure[: figure.index("</figure>")]
    assert f'id="marker-{_deviation_id(written.run_id)}-conditions"' in figure
    assert "<svg" in figure and "<?xml" not in figure


def test_today_qc_and_disposition_say_so(written: Written) -> None:
    assert "No results yet." in written.html
    assert "Not dispositioned." in written.html
    assert "SIMULATION — NOT A PRODUCT" in written.html


def _pdf_text(pdf: bytes) -> list[str]:
    document = pdfium.PdfDocument(pdf)
    return [document[i].get_textpage().get_text_range() for i in range(len(document))]


def test_every_signature_is_printed(written: Written) -> None:
    with Journal(written.path, create=False) as journal:
        records = journal.records(written.run_id)
    names = {s.printed_name for r in records for s in signatures_of(r.payload)}
    assert {"Simulated operator A", "Simulated operator B", "Simulated supervisor"} <= names
    pdf_text = "".join(_pdf_text(written.pdf))
    for name in names:
        assert name in written.html
        assert name in pdf_text


def test_pdf_first_page_is_not_blank_and_leads_with_the_exception(written: Written) -> None:
    document = pdfium.PdfDocument(written.pdf)
    image = document[0].render(scale=1).to_pil().convert("L")
    dark = sum(image.histogram()[:200])
    assert dark / (image.width * image.height) > 0.01
    pages = _pdf_text(written.pdf)
    assert "Review by exception" in pages[0]
    assert _deviation_id(written.run_id) in pages[0]
    for number, text in enumerate(pages, start=1):
        assert "SIMULATION — NOT A PRODUCT" in text
        assert f"page {number} of {len(pages)}" in text
        assert "W123426000042" in text  # the DIN in every page's header


def test_the_same_time_gives_the_same_bytes(written: Written, tmp_path: Path) -> None:
    with Journal(written.path, create=False) as journal:
        html_path, pdf_path = write_report(journal, written.run_id, tmp_path, generated_at=AT)
    assert html_path.read_text("utf-8") == written.html
    assert pdf_path.read_bytes() == written.pdf
    assert (html_path.name, pdf_path.name) == (HTML_NAME, PDF_NAME)


def test_nothing_to_review_lists_the_rules(written: Written) -> None:
    with Journal(written.path, create=False) as journal:
        record = build_batch_record(journal, written.run_id, generated_at=AT)
    html = render_html(record.model_copy(update={"review": []}), [])
    review = html[html.index('<section id="review">') :]
    assert "Nothing needs review by exception" in review
    assert "borderline check" in review and "connection gap" in review


def test_a_signed_review_record_fills_in_the_deviation(batch: Batch) -> None:
    """The sections read through cellauto.review.read: a deviation classified (and
    signed) shows as classified, with its site record and its signer's name."""
    with batch.store.reading() as conn:
        recorded = runner_deviations(conn, batch.run_id)[0]
    who = batch.site.sign_in("qa.smith")
    acting = ReviewActing(who, "classify", recorded.deviation_id, batch.run_id, "")
    record = DeviationClassified(
        by="qa.smith",
        terminal=who.terminal,
        deviation_id=recorded.deviation_id,
        run_id=batch.run_id,
        classification=Classification.MAJOR,
        impact_assessment="culture above 38 °C for 3 h; potency at risk",
        run_record=RecordRef(
            chain="run", run_id=batch.run_id, seq=recorded.seq, hash=recorded.hash, kind="deviation"
        ),
    )

    def body(tx):  # type: ignore[no-untyped-def]
        check_actor(tx, acting, Permission.DEVIATION_CLASSIFY)
        ref = tx.append(record)
        return sign_act(
            tx,
            acting,
            ref,
            record,
            Meaning.REVIEWED,
            "I classify this deviation",
            permission=Permission.DEVIATION_CLASSIFY,
        )

    signature = run_act(batch.store, body)
    with Journal(batch.path, create=False) as journal:
        built = build_batch_record(journal, batch.run_id, generated_at=AT)
    (deviation,) = built.deviations
    assert (deviation.status, deviation.classification) == ("classified", "major")
    (anchor,) = deviation.history
    rows = {r.anchor: r for r in built.review_records}
    signed = rows[anchor]
    assert int(anchor[1:]) < signature.seq
    assert [s.meaning for s in signed.signatures] == ["reviewed"]
    html = render_html(built, [])
    assert signed.signatures[0].printed_name in html
    page = _parse(html)
    assert set(page.hrefs) <= set(page.ids)


def test_a_run_without_culture_or_freezer_says_so_on_its_plots(
    db_location: Location, tmp_path: Path
) -> None:
    from cellauto.sim import simulate

    path = db_location
    run = simulate("protocols/demo_expansion.py", seed=3, db=path, patient="typical")
    with Journal(path, create=False) as journal:
        html_path, pdf_path = write_report(journal, run.outcome.run_id, tmp_path / "out")
    html = html_path.read_text("utf-8")
    page = _parse(html)
    assert page.sections == [key for key, _ in SECTIONS]
    assert set(page.hrefs) <= set(page.ids)
    assert "No deviations were recorded for this run." in html
    for missing in ("no freezer temperatures recorded", "no storage temperature recorded"):
        assert f"<!-- {missing} -->" in html  # matplotlib's SVG keeps each text as a comment
    assert pdf_path.stat().st_size > 10_000


def test_a_report_replaces_a_link_instead_of_writing_through_it(
    batch_template: tuple[Path, str], tmp_path: Path
) -> None:
    from cellauto.review.report import write_report

    source, run_id = batch_template
    path = tmp_path / "batch.db"
    shutil.copyfile(source, path)
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (out / "batch-record.html").symlink_to(victim)
    with Journal(path, create=False) as journal:
        write_report(journal, run_id, out, generated_at=AT, pdf=False)
    assert victim.read_text() == "keep me"
    assert not (out / "batch-record.html").is_symlink()
    assert [p.name for p in out.iterdir()] == ["batch-record.html"]  # no scratch left
