"""The PDF's content (reportlab platypus flowables), section by section, in the order and
with the anchors of the HTML (see :mod:`cellauto.review.report.pdf` for the document)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from html import escape
from typing import Any

from cellauto.review.report.exceptions import RULES
from cellauto.review.report.html import SIMULATION_BANNER, Anchors, when
from cellauto.review.report.model import SECTIONS, BatchRecord, SignatureLine
from cellauto.review.report.plots import FIGURES, PlotOutput

__all__ = ["BOLD", "FONT", "StoryBuilder", "known_anchors"]

FONT = "DejaVuSans"
BOLD = "DejaVuSans-Bold"
_FONT, _BOLD = FONT, BOLD


def known_anchors(b: BatchRecord) -> set[str]:
    """Every anchor the document places (so that a link is drawn only to a place)."""
    found = {key for key, _ in SECTIONS}
    found |= {f"plot-{key}" for key, *_ in FIGURES}
    for s in b.steps:
        found |= {s.anchor} if s.anchor else set()
        found |= {a.anchor for a in s.acts} | {c.anchor for c in s.checks}
    found |= {d.deviation_id for d in b.deviations} | {q.result_id for q in b.qc}
    found |= {e.anchor for e in b.equipment} | {r.anchor for r in b.review_records}
    found |= {c.anchor for c in b.corrections if c.anchor.startswith("s")}
    found |= {a for row in b.appendix for a in row.anchors}
    return found


class StoryBuilder:
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
