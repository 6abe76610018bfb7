"""The batch record as a PDF (reportlab platypus): the same sections and anchors as the
HTML, plots as 150 dpi PNG, text in DejaVu Sans taken from matplotlib's ``mpl-data`` (no
system fonts). Every page carries the product, DIN, COI and "page n of N", and
"SIMULATION — NOT A PRODUCT" for a simulated batch. Internal links (``<a href="#r412">``)
go to named destinations; each section is an outline entry. ``invariant=1`` keeps the
bytes the same for the same record.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cellauto.review.report.html import SIMULATION_BANNER
from cellauto.review.report.model import BatchRecord
from cellauto.review.report.pdf_story import BOLD as _BOLD
from cellauto.review.report.pdf_story import FONT as _FONT
from cellauto.review.report.pdf_story import StoryBuilder
from cellauto.review.report.pdf_tables import appendix, later_sections
from cellauto.review.report.plots import PlotOutput

__all__ = ["render_pdf"]


def _register_fonts() -> None:
    import matplotlib
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    if _FONT in pdfmetrics.getRegisteredFontNames():
        return
    ttf = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    pdfmetrics.registerFont(TTFont(_FONT, str(ttf / "DejaVuSans.ttf")))
    pdfmetrics.registerFont(TTFont(_BOLD, str(ttf / "DejaVuSans-Bold.ttf")))
    pdfmetrics.registerFontFamily(_FONT, normal=_FONT, bold=_BOLD, italic=_FONT, boldItalic=_BOLD)


def _page_canvas(b: BatchRecord) -> Any:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen.canvas import Canvas

    h = b.header
    left = f"{h.product} · DIN {h.din or '—'} · COI {h.coi or '—'}"

    class NumberedCanvas(Canvas):  # type: ignore[misc]  # reportlab is untyped  # "page n of N": drawn once the number of pages is known
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._pages: list[dict[str, Any]] = []

        def showPage(self) -> None:
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            total = len(self._pages)
            for state in self._pages:
                self.__dict__.update(state)
                self._decorate(total)
                super().showPage()
            super().save()

        def _decorate(self, total: int) -> None:
            width, height = A4
            self.saveState()
            self.setFont(_FONT, 7.5)
            self.setFillColor(colors.HexColor("#333333"))
            self.drawString(36, height - 24, left)
            self.drawRightString(width - 36, height - 24, f"page {self._pageNumber} of {total}")
            self.setStrokeColor(colors.HexColor("#1f618d"))
            self.line(36, height - 28, width - 36, height - 28)
            if h.simulated:
                self.setFont(_BOLD, 9)
                self.setFillColor(colors.HexColor("#c0392b"))
                self.drawCentredString(width / 2, height - 40, SIMULATION_BANNER)
                self.drawCentredString(width / 2, 18, SIMULATION_BANNER)
            self.restoreState()

    return NumberedCanvas


def render_pdf(b: BatchRecord, figures: Sequence[PlotOutput], path: Path) -> Path:
    """Write the PDF to ``path``."""
    from reportlab.lib.pagesizes import A4
    from reportlab.platypus import CondPageBreak, SimpleDocTemplate

    _register_fonts()
    h = b.header

    class _Doc(SimpleDocTemplate):  # type: ignore[misc]  # reportlab is untyped
        def afterFlowable(self, flowable: Any) -> None:
            outline = getattr(flowable, "_outline", None)
            if outline is not None:
                self.canv.addOutlineEntry(outline[1], outline[0], level=0)

    doc = _Doc(
        str(path),
        pagesize=A4,
        leftMargin=36,
        rightMargin=36,
        topMargin=50,
        bottomMargin=36,
        invariant=1,
        title=f"Batch record {h.product} {h.din or h.run_id}",
        author="cellauto",
        creator="cellauto",
        producer="cellauto",
    )
    builder = StoryBuilder(b, doc.width)
    builder.header()
    builder.review()
    for part in (builder.disposition, builder.deviations, builder.qc):
        builder.story.append(CondPageBreak(120))
        part()
    builder.story.append(CondPageBreak(200))
    builder.plots(figures)
    builder.story.append(CondPageBreak(200))
    builder.steps()
    later_sections(builder)
    builder.story.append(CondPageBreak(200))
    appendix(builder)
    doc.build(builder.story, canvasmaker=_page_canvas(b))
    return path
