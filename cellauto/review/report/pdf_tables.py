"""The PDF's later sections: parameters, materials and lots, equipment, the audit trail,
verification and the appendix (the tables that follow the steps)."""

from __future__ import annotations

from html import escape

from cellauto.review.report.html import when
from cellauto.review.report.pdf_story import StoryBuilder

__all__ = ["appendix", "later_sections"]


def later_sections(sb: StoryBuilder) -> None:
    """Parameters, materials, equipment, the audit trail and verification."""
    b = sb.b
    sb.heading("parameters", "Parameters")
    sb.table(("parameter", "value"), [[escape(k), escape(v)] for k, v in b.parameters], (1, 2))
    sb.heading("materials", "Materials and lots")
    sb.table(
        ("#", "step", "material", "lot", "supplier lot", "expires", "quantity", "basis"),
        [
            [
                sb.link(m.anchor, m.anchor[1:]),
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
    sb.heading("equipment", "Equipment")
    sb.table(
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
                f"{sb.name(q.anchor)}{escape(q.equipment)}",
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
    sb.heading("audit", "Audit trail of corrections")
    sb.table(
        ("record", "when", "kind", "what changed"),
        [
            [
                (sb.name(c.anchor) if c.anchor.startswith("s") else "")
                + sb.link(c.anchor, c.anchor),
                escape(when(c.when_utc)),
                escape(c.kind),
                escape(c.text),
            ]
            for c in b.corrections
        ],
        (0.7, 1.3, 1.2, 5),
        "No corrections.",
    )
    sb.story.append(sb.p("Review records of this run (site chain)", sb.h3))
    sb.table(
        ("record", "when", "kind", "by", "what"),
        [
            [
                f"{sb.name(r.anchor)}{escape(r.anchor)}",
                escape(when(r.when_utc)),
                escape(r.kind),
                escape(r.by),
                escape(r.text) + sb.sigs(r.signatures),
            ]
            for r in b.review_records
        ],
        (0.6, 1.2, 1.2, 0.8, 5),
        "No review records yet.",
    )
    v = b.verification
    sb.heading("verification", "Verification")
    run = "intact" if v.run_intact else f"BROKEN: {v.run_problem}"
    sb.table(
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


def appendix(sb: StoryBuilder) -> None:
    """Every run record in words (collapsed readings keep referenced anchors)."""
    sb.heading("appendix", "Appendix: the full record")
    rows = []
    for a in sb.b.appendix:
        marks = "".join(sb.name(x) for x in a.anchors)
        seq = sb.link(f"r{a.seq}", a.seq) if a.elsewhere else escape(a.seq)
        rows.append([marks + seq, escape(when(a.when_utc)), escape(a.kind), escape(a.text)])
    sb.table(("#", "when", "kind", "record"), rows, (0.8, 1.4, 1.2, 6))
