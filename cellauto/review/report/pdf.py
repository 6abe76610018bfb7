"""The batch record as a PDF (reportlab platypus): the same sections and anchors as the
HTML, plots as 150 dpi PNG, text in DejaVu Sans taken from matplotlib's ``mpl-data`` (no
system fonts). Every page carries the product, DIN, COI and "page n of N", and
"SIMULATION — NOT A PRODUCT" for a simulated batch. Internal links (``<a href="#r412">``)
go to named destinations; each section is an outline entry. ``invariant=1`` keeps the
bytes the same for the same record.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from cellauto.review.report.exceptions import RULES
from cellauto.review.report.html import SIMULATION_BANNER, Anchors, when
from cellauto.review.report.model import SECTIONS, BatchRecord, SignatureLine
from cellauto.review.report.plots import PlotOutput

__all__ = ["known_anchors", "render_pdf"]

_FONT = "DejaVuSans"
_BOLD = "DejaVuSans-Bold"


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


def known_anchors(b: BatchRecord) -> set[str]:
    """Every anchor the document places (so that a link is drawn only to a place)."""
    found = {key for key, _ in SECTIONS}
    found |= {f"plot-{key}" for key in ("growth", "metabolites", "conditions", "freeze", "storage")}
    for s in b.steps:
        found |= {s.anchor} if s.anchor else set()
        found |= {a.anchor for a in s.acts} | {c.anchor for c in s.checks}
    found |= {d.deviation_id for d in b.deviations} | {q.result_id for q in b.qc}
    found |= {e.anchor for e in b.equipment} | {r.anchor for r in b.review_records}
    found |= {c.anchor for c in b.corrections if c.anchor.startswith("s")}
    found |= {a for row in b.appendix for a in row.anchors}
    return found


class _Builder:
    def __init__(self, b: BatchRecord, width: float) -> None:
        from reportlab.lib import colors
        from reportlab.lib.styles import ParagraphStyle

        self.b = b
        self.width = width
        self.ids = Anchors()
        self.known = known_anchors(b)
        self.colors = colors
        self.body = ParagraphStyle("body", fontName=_FONT, fontSize=8.5, leading=10.5)
        self.cell = ParagraphStyle("cell", fontName=_FONT, fontSize=7, leading=8.5)
        self.h1 = ParagraphStyle("h1", fontName=_BOLD, fontSize=16, leading=20, spaceAfter=6)
        self.h2 = ParagraphStyle(
            "h2",
            fontName=_BOLD,
            fontSize=12.5,
            leading=16,
            spaceBefore=10,
            spaceAfter=4,
            textColor=colors.HexColor("#1f618d"),
        )
        self.h3 = ParagraphStyle("h3", fontName=_BOLD, fontSize=9.5, leading=12, spaceBefore=6)
        self.story: list[Any] = []

    # -- text helpers ------------------------------------------------------------------
    def name(self, anchor: str | None) -> str:
        return f'<a name="{escape(anchor)}"/>' if anchor and self.ids.claim(anchor) else ""

    def link(self, anchor: str, text: str) -> str:
        if anchor not in self.known:
            return escape(text)
        return f'<a href="#{escape(anchor)}" color="#1f618d">{escape(text)}</a>'

    def p(self, markup: str, style: Any = None) -> Any:
        from reportlab.platypus import Paragraph

        return Paragraph(markup, style or self.body)

    def table(
        self,
        head: Sequence[str],
        rows: list[list[str]],
        widths: Sequence[float],
        empty: str = "none",
    ) -> None:
        from reportlab.platypus import Table, TableStyle

        if not rows:
            self.story.append(self.p(f"<i>{escape(empty)}</i>"))
            return
        data = [[self.p(f"<b>{escape(h)}</b>", self.cell) for h in head]] if any(head) else []
        data += [[self.p(c, self.cell) for c in row] for row in rows]
        total = sum(widths)
        t = Table(
            data,
            colWidths=[self.width * w / total for w in widths],
            repeatRows=1 if any(head) else 0,
        )
        shade = (
            [("BACKGROUND", (0, 0), (-1, 0), self.colors.HexColor("#eef2f6"))] if any(head) else []
        )
        t.setStyle(
            TableStyle(
                [
                    ("GRID", (0, 0), (-1, -1), 0.3, self.colors.HexColor("#d0d7de")),
                    *shade,
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                    ("LEFTPADDING", (0, 0), (-1, -1), 2),
                    ("RIGHTPADDING", (0, 0), (-1, -1), 2),
                ]
            )
        )
        self.story.append(t)

    def heading(self, key: str, title: str) -> None:
        para = self.p(f"{self.name(key)}{escape(title)}", self.h2)
        para._outline = (key, title)
        self.story.append(para)

    def sigs(self, signatures: Sequence[SignatureLine]) -> str:
        return "".join(
            f"<br/><font color='#34495e'>signed: {escape(s.printed_name)} ({escape(s.signer)})"
            f" — {escape(s.meaning)} — {escape(s.signed_at)} [{escape(s.where)}]</font>"
            for s in signatures
        )

    # -- sections ----------------------------------------------------------------------
    def header(self) -> None:
        h = self.b.header
        self.story.append(
            self.p(f"{self.name('header')}Batch record: {escape(h.product)}", self.h1)
        )
        pairs = [
            ("Product", h.product),
            ("Batch (DIN)", h.din or "not recorded"),
            ("Chain of identity (COI)", h.coi or "not recorded"),
            ("Run", h.run_id),
            ("Protocol", f"{h.protocol} {h.protocol_version}"),
            ("Protocol SHA-256", h.protocol_sha256 or "not recorded"),
            ("Started", when(h.started_utc)),
            ("Ended", when(h.ended_utc) or "not ended"),
            ("Final state", f"{h.final_state} ({h.exit_status})" if h.final_state else "running"),
            ("Disposition", h.disposition),
            ("Generated", f"{when(h.generated_at)} from {h.journal}"),
        ]
        if h.simulated:
            pairs.insert(0, ("Simulation", SIMULATION_BANNER))
        self.table(("", ""), [[f"<b>{escape(k)}</b>", escape(v)] for k, v in pairs], (1, 3))

    def review(self) -> None:
        self.heading("review", "Review by exception")
        if not self.b.review:
            self.story.append(
                self.p(
                    "<b>Nothing needs review by exception.</b> These rules were"
                    " applied to every record of the run:"
                )
            )
        else:
            rows = [
                [
                    f"<b>{escape(i.severity)}</b>" if i.severity == "blocks release" else "review",
                    escape(i.category),
                    self.link(i.anchor, i.title),
                    escape(i.detail),
                    escape(when(i.when_utc)),
                    escape(i.step or ""),
                ]
                for i in self.b.review
            ]
            self.table(
                ("severity", "category", "what", "detail", "when", "step"),
                rows,
                (1.1, 1.1, 2, 3, 1.4, 1),
            )
            self.story.append(self.p("Rules applied:"))
        for category, what in RULES:
            self.story.append(self.p(f"• <b>{escape(category)}</b>: {escape(what)}", self.cell))

    def disposition(self) -> None:
        self.heading("disposition", "Disposition and certificate of analysis")
        d = self.b.disposition
        if d is None:
            self.story.append(
                self.p("<b>Not dispositioned.</b> QA has neither released nor rejected this batch.")
            )
            return
        self.story.append(
            self.p(
                f"<b>{escape(d.decision.upper())}</b> by {escape(d.by)}"
                f" on {escape(when(d.decided_at))}"
                f" ({self.link(d.anchor, 'record')}); certificate SHA-256 {escape(d.coa_sha256)}"
            )
        )
        if d.coa is not None:
            if d.coa.simulated:
                self.story.append(
                    self.p(f"<font color='#c0392b'><b>{SIMULATION_BANNER}</b></font>")
                )
            rows = [
                [
                    escape(x)
                    for x in (
                        line.test,
                        line.method,
                        line.specification,
                        f"{line.result} {line.unit}",
                        line.verdict,
                        line.result_id or "",
                        line.analyst or "",
                        str(line.tested_on or ""),
                    )
                ]
                for line in d.coa.lines
            ]
            self.table(
                (
                    "test",
                    "method",
                    "specification",
                    "result",
                    "verdict",
                    "result id",
                    "analyst",
                    "tested on",
                ),
                rows,
                (1.5, 1.5, 1.5, 1, 0.7, 1.6, 1, 1),
            )

    def deviations(self) -> None:
        self.heading("deviations", "Deviations")
        rows = [
            [
                f"{self.name(d.deviation_id)}<b>{escape(d.deviation_id)}</b>",
                escape(d.origin),
                escape(d.step or ""),
                escape(d.title),
                escape(d.status),
                escape(d.classification or ""),
                escape(d.capa or ""),
                escape(when(d.opened_utc)),
                " ".join(
                    self.link(a, a) for a in ([d.run_anchor] if d.run_anchor else []) + d.history
                ),
            ]
            for d in self.b.deviations
        ]
        self.table(
            ("id", "origin", "step", "title", "status", "class", "CAPA", "opened", "records"),
            rows,
            (2.2, 0.7, 0.8, 2.4, 0.8, 0.7, 0.8, 1.2, 0.8),
            "No deviations were recorded.",
        )

    def qc(self) -> None:
        self.heading("qc", "QC results")
        if self.b.plan is None:
            self.story.append(self.p("<i>This run recorded no release plan (release tests).</i>"))
        else:
            self.table(
                ("test", "specification", "required"),
                [
                    [
                        escape(t.name),
                        escape(t.specification),
                        "required" if t.required else "for information",
                    ]
                    for t in self.b.plan
                ],
                (2, 3, 1),
            )
        rows = [
            [
                f"{self.name(q.result_id)}{escape(q.result_id)}",
                escape(q.test),
                escape(f"{q.result} {q.unit}"),
                escape(q.verdict),
                escape(q.status),
                escape(q.source),
                escape(q.entered_by),
                escape(q.verified_by or ""),
                self.link(q.anchor, q.anchor),
            ]
            for q in self.b.qc
        ]
        self.table(
            (
                "id",
                "test",
                "result",
                "verdict",
                "status",
                "source",
                "entered by",
                "verified by",
                "record",
            ),
            rows,
            (2, 1.3, 1, 0.7, 0.8, 0.7, 1, 1, 0.7),
            "No results yet.",
        )

    def plots(self, figures: Sequence[PlotOutput]) -> None:
        from reportlab.lib.utils import ImageReader
        from reportlab.platypus import Image, KeepTogether

        self.heading("plots", "Plots")
        for f in figures:
            reader = ImageReader(io.BytesIO(f.png))
            w, h = reader.getSize()
            image = Image(io.BytesIO(f.png), width=self.width, height=self.width * h / w)
            self.story.append(
                KeepTogether(
                    [
                        self.p(f"{self.name('plot-' + f.key)}{escape(f.title)}", self.h3),
                        image,
                        self.p(
                            f"<font color='#555555'>{escape(f.caption)}; red: deviations, orange:"
                            " alarms, grey: held or no connection</font>",
                            self.cell,
                        ),
                    ]
                )
            )

    def steps(self) -> None:
        self.heading("steps", "Steps")
        for s in self.b.steps:
            timing = f"{when(s.started_utc)} → {when(s.ended_utc) or '…'}" + (
                f" ({s.duration})" if s.duration else ""
            )
            attempts = f", {s.attempts} attempts" if s.attempts > 1 else ""
            self.story.append(self.p(f"{self.name(s.anchor)}{escape(' / '.join(s.path))}", self.h3))
            self.story.append(self.p(escape(f"{s.outcome}{attempts}; {timing}")))
            self.table(
                ("#", "when", "act"),
                [
                    [
                        f"{self.name(a.anchor)}{escape(a.anchor[1:])}",
                        escape(when(a.when_utc)),
                        escape(a.text) + self.sigs(a.signatures),
                    ]
                    for a in s.acts
                ],
                (0.5, 1.3, 6),
                "no operator acts or commands",
            )
            self.table(
                ("check", "value", "specification", "verdict", "when"),
                [
                    [
                        f"{self.name(c.anchor)}{escape(c.check)}",
                        escape(f"{c.value:g} {c.unit}"),
                        escape(c.specification),
                        escape(
                            c.verdict
                            + (" (borderline)" if c.borderline else "")
                            + (
                                f" [RECORD DISAGREES: {c.verdict_problem}]"
                                if c.verdict_problem
                                else ""
                            )
                        ),
                        escape(when(c.when_utc)),
                    ]
                    for c in s.checks
                ],
                (2, 1.2, 1.4, 1, 1.3),
                "no checks",
            )

    def simple(self) -> None:
        b = self.b
        self.heading("parameters", "Parameters")
        self.table(
            ("parameter", "value"), [[escape(k), escape(v)] for k, v in b.parameters], (1, 2)
        )
        self.heading("materials", "Materials and lots")
        self.table(
            ("#", "step", "material", "lot", "supplier lot", "expires", "quantity", "basis"),
            [
                [
                    self.link(m.anchor, m.anchor[1:]),
                    escape(m.step or ""),
                    escape(m.material),
                    escape(m.lot_id),
                    escape(m.supplier_lot),
                    escape(m.expires_on),
                    escape(m.quantity),
                    escape(m.basis),
                ]
                for m in b.materials
            ],
            (0.5, 1, 1.4, 1.6, 1.3, 0.9, 0.8, 2),
            "No material use was recorded.",
        )
        self.heading("equipment", "Equipment")
        self.table(
            (
                "equipment",
                "asset",
                "serial",
                "model",
                "status",
                "calibrated through",
                "needed through",
                "at use",
            ),
            [
                [
                    f"{self.name(q.anchor)}{escape(q.equipment)}",
                    escape(q.asset or ""),
                    escape(q.serial),
                    escape(q.model),
                    escape(q.status or ""),
                    escape(q.calibration_due or ""),
                    escape(q.needed_through),
                    "fit for use" if q.passed else escape(f"NOT FIT: {q.problem}"),
                ]
                for q in b.equipment
            ],
            (1, 1, 0.9, 1.5, 0.8, 1, 1.3, 1),
            "No equipment check was recorded.",
        )
        self.heading("audit", "Audit trail of corrections")
        self.table(
            ("record", "when", "kind", "what changed"),
            [
                [
                    (self.name(c.anchor) if c.anchor.startswith("s") else "")
                    + self.link(c.anchor, c.anchor),
                    escape(when(c.when_utc)),
                    escape(c.kind),
                    escape(c.text),
                ]
                for c in b.corrections
            ],
            (0.7, 1.3, 1.2, 5),
            "No corrections.",
        )
        self.story.append(self.p("Review records of this run (site chain)", self.h3))
        self.table(
            ("record", "when", "kind", "by", "what"),
            [
                [
                    f"{self.name(r.anchor)}{escape(r.anchor)}",
                    escape(when(r.when_utc)),
                    escape(r.kind),
                    escape(r.by),
                    escape(r.text) + self.sigs(r.signatures),
                ]
                for r in b.review_records
            ],
            (0.6, 1.2, 1.2, 0.8, 5),
            "No review records yet.",
        )
        v = b.verification
        self.heading("verification", "Verification")
        run = "intact" if v.run_intact else f"BROKEN: {v.run_problem}"
        self.table(
            ("", ""),
            [
                [escape(k), escape(val)]
                for k, val in (
                    ("Run chain", f"{run}, {v.run_records} records, sealed: {v.run_sealed}"),
                    ("Run head hash", v.run_head_hash or ""),
                    ("Signed in the ledger through", f"record {v.run_anchored_seq}"),
                    (
                        "Site chain",
                        ("intact" if v.site_intact else f"BROKEN: {v.site_problem}")
                        + f", {v.site_records} records",
                    ),
                    ("Site head hash", v.site_head_hash or "none"),
                    ("Review rows", v.review_problem or "agree with their site records"),
                )
            ],
            (1, 3),
        )

    def appendix(self) -> None:
        self.heading("appendix", "Appendix: the full record")
        rows = []
        for a in self.b.appendix:
            marks = "".join(self.name(x) for x in a.anchors)
            seq = self.link(f"r{a.seq}", a.seq) if a.elsewhere else escape(a.seq)
            rows.append([marks + seq, escape(when(a.when_utc)), escape(a.kind), escape(a.text)])
        self.table(("#", "when", "kind", "record"), rows, (0.8, 1.4, 1.2, 6))


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
    builder = _Builder(b, doc.width)
    builder.header()
    builder.review()
    for part in (builder.disposition, builder.deviations, builder.qc):
        builder.story.append(CondPageBreak(120))
        part()
    builder.story.append(CondPageBreak(200))
    builder.plots(figures)
    builder.story.append(CondPageBreak(200))
    builder.steps()
    builder.simple()
    builder.story.append(CondPageBreak(200))
    builder.appendix()
    doc.build(builder.story, canvasmaker=_page_canvas(b))
    return path
