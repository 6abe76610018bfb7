"""The batch record as one self-contained HTML file: inline CSS, inline SVG plots, a
table of contents, no scripts, every value escaped with :func:`html.escape`.

Every ``href="#…"`` points at an id in the file: ids are handed out in document order by
:class:`Anchors`, which places each anchor once (a record shown in its step is anchored
there; the appendix links to it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from html import escape

from cellauto.review.report.exceptions import RULES
from cellauto.review.report.html_style import CSS as _CSS
from cellauto.review.report.model import (
    SECTIONS,
    AppendixRow,
    BatchRecord,
    SignatureLine,
    StepSection,
)
from cellauto.review.report.plots import PlotOutput

__all__ = ["SIMULATION_BANNER", "Anchors", "render_html", "when"]

SIMULATION_BANNER = "SIMULATION — NOT A PRODUCT"


def when(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


class Anchors:
    """Hands out each anchor id once, in document order."""

    def __init__(self) -> None:
        self.placed: set[str] = set()

    def claim(self, anchor: str | None) -> bool:
        if anchor is None or anchor in self.placed:
            return False
        self.placed.add(anchor)
        return True

    def attr(self, anchor: str | None) -> str:
        return f' id="{escape(anchor)}"' if anchor is not None and self.claim(anchor) else ""


def _e(value: object) -> str:
    return escape("" if value is None else str(value))


def _link(anchor: str, text: str) -> str:
    return f'<a href="#{escape(anchor)}">{escape(text)}</a>'


def _table(head: Sequence[str], rows: Iterable[str], empty: str = "none") -> str:
    body = "".join(rows)
    if not body:
        return f'<p class="muted">{escape(empty)}</p>'
    header = "".join(f"<th>{escape(h)}</th>" for h in head)
    return f"<table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"


def _signatures(signatures: Sequence[SignatureLine]) -> str:
    return "".join(
        f'<div class="sig">signed: {_e(s.printed_name)} ({_e(s.signer)}) — {_e(s.meaning)} — '
        f"{_e(s.signed_at)} [{_e(s.where)}]</div>"
        for s in signatures
    )


def _kv(pairs: Sequence[tuple[str, str]]) -> str:
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{v}</td></tr>" for k, v in pairs)
    return f'<table class="kv">{rows}</table>'


def _header(b: BatchRecord) -> str:
    h = b.header
    sha = f"<code>{_e(h.protocol_sha256)}</code>" if h.protocol_sha256 else "not recorded"
    pairs = [
        ("Product", _e(h.product)),
        ("Batch (DIN)", _e(h.din or "not recorded")),
        ("Chain of identity (COI)", _e(h.coi or "not recorded")),
        ("Run", f"<code>{_e(h.run_id)}</code>"),
        ("Protocol", f"{_e(h.protocol)} {_e(h.protocol_version)}"),
        ("Protocol SHA-256", sha),
        ("Started", _e(when(h.started_utc))),
        ("Ended", _e(when(h.ended_utc) or "not ended")),
        ("Final state", _e(f"{h.final_state} ({h.exit_status})" if h.final_state else "running")),
        ("Disposition", _e(h.disposition)),
        ("Journal", _e(h.journal)),
        ("Generated", _e(when(h.generated_at))),
    ]
    if h.simulated:
        pairs.insert(0, ("Simulation", f"<strong>{SIMULATION_BANNER}</strong>"))
    return f"<h1>Batch record: {_e(h.product)}</h1>{_kv(pairs)}"


def _review(b: BatchRecord) -> str:
    rules = "".join(f"<li><b>{escape(c)}</b>: {escape(w)}</li>" for c, w in RULES)
    if not b.review:
        return (
            '<p class="empty"><b>Nothing needs review by exception.</b> These rules were'
            f" applied to every record of the run:</p><ul>{rules}</ul>"
        )
    rows = (
        f'<tr><td class="{"blocks" if i.severity == "blocks release" else "review"}">'
        f"{_e(i.severity)}</td><td>{_e(i.category)}</td><td>{_link(i.anchor, i.title)}</td>"
        f"<td>{_e(i.detail)}</td><td>{_e(when(i.when_utc))}</td><td>{_e(i.step)}</td></tr>"
        for i in b.review
    )
    table = _table(("severity", "category", "what", "detail", "when", "step"), rows)
    return (
        f"<p>{len(b.review)} item(s), blocking first.</p>{table}<details><summary>Rules"
        f" applied</summary><ul>{rules}</ul></details>"
    )


def _disposition(b: BatchRecord, ids: Anchors) -> str:
    d = b.disposition
    if d is None:
        return "<p><b>Not dispositioned.</b> QA has neither released nor rejected this batch.</p>"
    out = [
        f"<p><b>{_e(d.decision.upper())}</b> by {_e(d.by)} on {_e(when(d.decided_at))}"
        f" ({_link(d.anchor, 'record')}); certificate SHA-256 <code>{_e(d.coa_sha256)}</code></p>"
    ]
    if d.coa is not None:
        c = d.coa
        rows = (
            f"<tr><td>{_e(line.test)}</td><td>{_e(line.method)}</td><td>{_e(line.specification)}"
            f'</td><td>{_e(line.result)} {_e(line.unit)}</td><td class="{_e(line.verdict)}">'
            f"{_e(line.verdict)}</td><td>{_e(line.result_id)}</td><td>{_e(line.analyst)}</td>"
            f"<td>{_e(line.tested_on)}</td></tr>"
            for line in c.lines
        )
        out.append("<h3>Certificate of analysis</h3>")
        if c.simulated:
            out.append(f'<p class="banner">{SIMULATION_BANNER}</p>')
        out.append(
            _table(
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
            )
        )
        devs = "".join(
            f"<li>{_e(x.deviation_id)} ({_e(x.classification)}, {_e(x.status)}): {_e(x.title)}</li>"
            for x in c.deviations
        )
        if devs:
            out.append(f"<p>Deviations on the certificate:</p><ul>{devs}</ul>")
    return "".join(out)


def _deviations(b: BatchRecord, ids: Anchors) -> str:
    rows = (
        f"<tr{ids.attr(d.deviation_id)}><td><b>{_e(d.deviation_id)}</b></td><td>{_e(d.origin)}"
        f"</td><td>{_e(d.step)}</td><td>{_e(d.title)}</td><td>{_e(d.status)}</td>"
        f"<td>{_e(d.classification)}</td><td>{_e(d.product_impact)}</td><td>{_e(d.capa)}</td>"
        f"<td>{_e(when(d.opened_utc))}</td><td>{_e(when(d.closed_utc))}</td><td>"
        + " ".join(_link(a, a) for a in ([d.run_anchor] if d.run_anchor else []) + d.history)
        + "</td></tr>"
        for d in b.deviations
    )
    return _table(
        (
            "id",
            "origin",
            "step",
            "title",
            "status",
            "class",
            "product impact",
            "CAPA",
            "opened",
            "closed",
            "records",
        ),
        rows,
        "No deviations were recorded for this run.",
    )


def _qc(b: BatchRecord, ids: Anchors) -> str:
    out = []
    if b.plan is None:
        out.append('<p class="muted">This run recorded no release plan (release tests).</p>')
    else:
        rows = (
            f"<tr><td>{_e(t.name)}</td><td>{_e(t.specification)}</td>"
            f"<td>{'required' if t.required else 'for information'}</td></tr>"
            for t in b.plan
        )
        out.append("<h3>Release tests</h3>")
        out.append(_table(("test", "specification", "required"), rows))
    rows = (
        f"<tr{ids.attr(q.result_id)}><td>{_e(q.result_id)}</td><td>{_e(q.test)}</td>"
        f'<td>{_e(q.result)} {_e(q.unit)}</td><td class="{_e(q.verdict)}">{_e(q.verdict)}</td>'
        f"<td>{_e(q.status)}</td><td>{_e(q.source)}</td><td>{_e(q.entered_by)}</td>"
        f"<td>{_e(q.verified_by or '')}</td><td>{_link(q.anchor, q.anchor)}</td></tr>"
        for q in b.qc
    )
    out.append("<h3>Results</h3>")
    out.append(
        _table(
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
            "No results yet.",
        )
    )
    return "".join(out)


def _plots(figures: Sequence[PlotOutput], ids: Anchors) -> str:
    return "".join(
        f"<figure{ids.attr('plot-' + f.key)}><h3>{escape(f.title)}</h3>{f.svg}"
        f"<figcaption>{escape(f.caption)}; red: deviations, orange: alarms, grey: held or"
        " no connection</figcaption></figure>"
        for f in figures
    )


def _step(s: StepSection, ids: Anchors) -> str:
    status = f"{s.outcome}"
    if s.attempts > 1:
        status += f", {s.attempts} attempts"
    timing = f"{when(s.started_utc)} → {when(s.ended_utc) or '…'}" + (
        f" ({s.duration})" if s.duration else ""
    )
    acts = (
        f"<tr{ids.attr(a.anchor)}><td>{_e(a.anchor[1:])}</td><td>{_e(when(a.when_utc))}</td>"
        f"<td>{_e(a.text)}{_signatures(a.signatures)}</td></tr>"
        for a in s.acts
    )
    checks = (
        f"<tr{ids.attr(c.anchor)}><td>{_e(c.check)}</td><td>{c.value:g} {_e(c.unit)}</td>"
        f'<td>{_e(c.specification)}</td><td class="{"border" if c.borderline else c.verdict}">'
        f"{_e(c.verdict)}{' (borderline)' if c.borderline else ''}"
        f"{' [RECORD DISAGREES: ' + _e(c.verdict_problem) + ']' if c.verdict_problem else ''}"
        f"</td><td>{_e(when(c.when_utc))}</td></tr>"
        for c in s.checks
    )
    return (
        f"<article><h3{ids.attr(s.anchor)}>{_e(' / '.join(s.path))}</h3>"
        f"<p>{_e(status)}; {_e(timing)}</p>"
        + _table(("#", "when", "act"), acts, "no operator acts or commands")
        + _table(("check", "value", "specification", "verdict", "when"), checks, "no checks")
        + "</article>"
    )


def _materials(b: BatchRecord, ids: Anchors) -> str:
    rows = (
        f"<tr><td>{_link(m.anchor, m.anchor[1:])}</td><td>{_e(m.step)}</td><td>{_e(m.material)}"
        f"</td><td>{_e(m.lot_id)}</td><td>{_e(m.supplier_lot)}</td><td>{_e(m.expires_on)}</td>"
        f"<td>{_e(m.quantity)}</td><td>{_e(m.basis)}</td><td>{_e(m.how)}</td></tr>"
        for m in b.materials
    )
    return _table(
        ("#", "step", "material", "lot", "supplier lot", "expires", "quantity", "basis", "chosen"),
        rows,
        "No material use was recorded.",
    )


def _equipment(b: BatchRecord, ids: Anchors) -> str:
    rows = (
        f"<tr{ids.attr(q.anchor)}><td>{_e(q.equipment)}</td><td>{_e(q.asset)}</td>"
        f"<td>{_e(q.serial)}</td><td>{_e(q.model)}</td><td>{_e(q.status)}</td>"
        f"<td>{_e(q.calibration_due)}</td><td>{_e(q.needed_through)}</td>"
        f'<td class="{"pass" if q.passed else "fail"}">{"fit for use" if q.passed else "NOT FIT: "}'
        f"{_e(q.problem or '')}</td></tr>"
        for q in b.equipment
    )
    return _table(
        (
            "equipment",
            "asset",
            "serial read",
            "model",
            "status",
            "calibrated through",
            "needed through",
            "at use",
        ),
        rows,
        "No equipment check was recorded.",
    )


def _audit(b: BatchRecord, ids: Anchors) -> str:
    corrections = (
        f"<tr{ids.attr(c.anchor) if c.anchor.startswith('s') else ''}><td>"
        f"{_link(c.anchor, c.anchor)}</td><td>{_e(when(c.when_utc))}</td><td>{_e(c.kind)}</td>"
        f"<td>{_e(c.text)}</td></tr>"
        for c in b.corrections
    )
    reviewed = (
        f"<tr{ids.attr(r.anchor)}><td>{_e(r.anchor)}</td><td>{_e(when(r.when_utc))}</td>"
        f"<td>{_e(r.kind)}</td><td>{_e(r.by)}</td><td>{_e(r.text)}{_signatures(r.signatures)}"
        "</td></tr>"
        for r in b.review_records
    )
    return (
        "<h3>Corrections</h3>"
        + _table(("record", "when", "kind", "what changed"), corrections, "No corrections.")
        + "<h3>Review records of this run (site chain)</h3>"
        + _table(("record", "when", "kind", "by", "what"), reviewed, "No review records yet.")
    )


def _verification(b: BatchRecord) -> str:
    v = b.verification
    run = "intact" if v.run_intact else f"BROKEN: {v.run_problem}"
    if v.run_intact and not v.run_sealed:
        run = "intact but not sealed"
    site = "intact" if v.site_intact else f"BROKEN: {v.site_problem}"
    pairs = [
        ("Run chain", _e(f"{run}, {v.run_records} records, sealed: {v.run_sealed}")),
        ("Run head hash", f"<code>{_e(v.run_head_hash)}</code>"),
        ("Signed in the ledger through", _e(f"record {v.run_anchored_seq}")),
        ("Site chain", _e(f"{site}, {v.site_records} records")),
        ("Site head hash", f"<code>{_e(v.site_head_hash or 'none')}</code>"),
        ("Review rows", _e(v.review_problem or "agree with their site records")),
    ]
    return _kv(pairs)


def _appendix(b: BatchRecord, ids: Anchors) -> str:
    def row(a: AppendixRow) -> str:
        first = a.anchors[0] if a.anchors else None
        more = a.anchors[1:]
        extra = "".join(f"<span{ids.attr(x)}></span>" for x in more)
        seq = _link(f"r{a.seq}", a.seq) if a.elsewhere else _e(a.seq)
        return (
            f"<tr{ids.attr(first)}><td>{seq}{extra}</td><td>{_e(when(a.when_utc))}</td>"
            f"<td>{_e(a.kind)}</td><td>{_e(a.text)}</td></tr>"
        )

    return _table(("#", "when", "kind", "record"), (row(a) for a in b.appendix))


def render_html(b: BatchRecord, figures: Sequence[PlotOutput]) -> str:
    """The whole file."""
    ids = Anchors()
    h = b.header
    parts = {
        "header": _header(b),
        "review": _review(b),
        "disposition": _disposition(b, ids),
        "deviations": _deviations(b, ids),
        "qc": _qc(b, ids),
        "plots": _plots(figures, ids),
        "steps": "".join(_step(s, ids) for s in b.steps),
        "parameters": _kv([(k, _e(v)) for k, v in b.parameters]),
        "materials": _materials(b, ids),
        "equipment": _equipment(b, ids),
        "audit": _audit(b, ids),
        "verification": _verification(b),
        "appendix": _appendix(b, ids),
    }
    nav = "".join(f'<li><a href="#{key}">{escape(title)}</a></li>' for key, title in SECTIONS)
    sections = "".join(
        f'<section id="{key}">'
        + ("" if key == "header" else f"<h2>{escape(title)}</h2>")
        + parts[key]
        + "</section>"
        for key, title in SECTIONS
    )
    banner = f'<div class="banner">{SIMULATION_BANNER}</div>' if h.simulated else ""
    title = f"Batch record {h.product} {h.din or h.run_id}"
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"<nav><b>Contents</b><ol>{nav}</ol></nav><main>{banner}{sections}"
        f'<p class="muted">Generated {_e(when(h.generated_at))} from {_e(h.journal)}; this'
        " report is read from the records and is not itself a signed record.</p>"
        f"{banner}</main></body></html>\n"
    )
