"""Trends written out: ``trends.csv`` (one row per batch and metric) and ``trends.html``.

The HTML is one self-contained file (no script, no external resource): per protocol its
right-first-time rate, one plot per metric — the values in start order, the mean and the
control limits drawn, the baseline marked, out-of-trend points marked in red — with the
limits and the reasons in text, and a table of the batches with out-of-trend cells marked.
The plots are matplotlib SVG, inline, byte-stable (fixed hash salt, no date), so the same
journal and the same ``generated_at`` give the same file. matplotlib comes with
``cellauto[analysis]`` and is imported only here.
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

from cellauto import __version__
from cellauto.review._optional import analysis_module
from cellauto.review.trends import (
    METRICS,
    RUN_LENGTH,
    BatchMetrics,
    Selection,
    Trend,
    select_batches,
    trend,
)

__all__ = ["CSV_COLUMNS", "trends_by_protocol", "write_trends_csv", "write_trends_html"]

CSV_COLUMNS = (
    "protocol",
    "run_id",
    "batch",
    "started_utc",
    "exit_status",
    "disposition",
    "right_first_time",
    "simulated",
    "metric",
    "value",
    "unit",
    "mean",
    "lower_limit",
    "upper_limit",
    "baseline_batches",
    "out_of_trend",
)


def trends_by_protocol(
    tables: Mapping[str, Sequence[BatchMetrics]], baseline: int | None = None
) -> dict[str, list[Trend]]:
    """Every metric's trend, for each protocol's batches."""
    return {
        name: [trend(batches, metric, baseline=baseline) for metric in METRICS]
        for name, batches in tables.items()
    }


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def _num(value: float | None) -> str:
    return "" if value is None else repr(value)


def write_trends_csv(trends: Mapping[str, Sequence[Trend]], path: Path) -> Path:
    """One row per protocol, batch and metric, with the metric's limits and verdict."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        for name, series in trends.items():
            for t in series:
                limits = t.limits
                for p in t.points:
                    b = p.batch
                    writer.writerow(
                        [
                            name,
                            b.run_id,
                            b.batch or "",
                            _iso(b.started),
                            b.exit_status,
                            b.disposition or "",
                            "yes" if b.right_first_time else "no",
                            "yes" if b.simulated else "no",
                            t.metric.key,
                            _num(p.value),
                            t.unit,
                            _num(limits.mean if limits else None),
                            _num(limits.lower if limits else None),
                            _num(limits.upper if limits else None),
                            limits.baseline if limits else "",
                            p.out_of_trend or "",
                        ]
                    )
    return path


def _svg(t: Trend) -> str:
    """The trend's plot as inline SVG (no XML prolog)."""
    mpl = analysis_module("matplotlib")
    figure_module = analysis_module("matplotlib.figure")
    with mpl.rc_context(
        {"svg.hashsalt": "cellauto-trends", "svg.fonttype": "none", "font.size": 8}
    ):
        fig = figure_module.Figure(figsize=(7.0, 2.6), layout="constrained")
        ax = fig.subplots()
        xs = [i + 1 for i, p in enumerate(t.points) if p.value is not None]
        ys = [p.value for p in t.points if p.value is not None]
        ax.plot(xs, ys, marker="o", markersize=3.5, linewidth=1, color="#1f4e79", label="batch")
        limits = t.limits
        if limits is not None:
            ax.axhline(limits.mean, color="#555555", linewidth=1, label="mean")
            for level, text in ((limits.upper, "UCL (mean + 3 sigma)"), (limits.lower, "LCL")):
                ax.axhline(level, color="#c00000", linewidth=1, linestyle="--", label=text)
            if limits.baseline < len(xs):
                ax.axvline(
                    xs[limits.baseline - 1] + 0.5,
                    color="#999999",
                    linewidth=0.8,
                    linestyle=":",
                    label=f"end of baseline ({limits.baseline})",
                )
        flagged = [(i + 1, p.value) for i, p in enumerate(t.points) if p.out_of_trend]
        if flagged:
            ax.scatter(
                [x for x, _ in flagged],
                [y for _, y in flagged],
                s=60,
                facecolors="none",
                edgecolors="#c00000",
                linewidths=1.5,
                zorder=3,
                label="out of trend",
            )
        ax.set_xlabel("batch (start order)")
        ax.set_ylabel(f"{t.metric.title}" + (f" ({t.unit})" if t.unit else ""))
        ax.set_xlim(0.5, max(len(t.points), 1) + 0.5)
        ax.grid(True, linewidth=0.3)
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:72em}
h1{font-size:1.5em}h2{font-size:1.25em;border-bottom:1px solid #ccc;margin-top:2em}
h3{font-size:1.05em;margin-bottom:.2em}
table{border-collapse:collapse;font-size:.85em}td,th{border:1px solid #ccc;padding:.2em .5em}
th{background:#f3f3f3;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.oot{background:#fde2e2;color:#900;font-weight:bold}
.note{color:#555;font-size:.9em}figure{margin:.3em 0}
@media print{section{page-break-before:always}}
"""


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def _trend_html(t: Trend) -> str:
    e = html.escape
    limits = t.limits
    unit = f" {e(t.unit)}" if t.unit else ""
    if limits is None:
        text = "No control limits: fewer than two batches have a value."
    else:
        text = (
            f"mean {_fmt(limits.mean)}{unit}, sigma {_fmt(limits.sigma)}, lower limit "
            f"{_fmt(limits.lower)}, upper limit {_fmt(limits.upper)} (over the first "
            f"{limits.baseline} batches)"
        )
    flagged = "".join(
        f"<li>{e(p.batch.run_id[:12])} ({e(_iso(p.batch.started))}): {_fmt(p.value)}{unit}"
        f" — {e(p.out_of_trend or '')}</li>"
        for p in t.flagged
    )
    return (
        f'<h3 id="{e(t.metric.key)}">{e(t.metric.title)}</h3>'
        f"<figure>{_svg(t)}</figure><p class=note>{text}</p>"
        + (f"<ul>{flagged}</ul>" if flagged else "<p class=note>No batch is out of trend.</p>")
    )


def _table_html(series: Sequence[Trend]) -> str:
    e = html.escape
    head = "".join(
        f"<th>{e(t.metric.title)}{f' ({e(t.unit)})' if t.unit else ''}</th>" for t in series
    )
    rows = []
    batches = [p.batch for p in series[0].points] if series else []
    for i, b in enumerate(batches):
        cells = []
        for t in series:
            p = t.points[i]
            if p.out_of_trend:
                cells.append(
                    f'<td class="num oot" title="{e(p.out_of_trend)}">{_fmt(p.value)}</td>'
                )
            else:
                cells.append(f'<td class="num">{_fmt(p.value)}</td>')
        rows.append(
            f"<tr><td>{i + 1}</td><td>{e(_iso(b.started))}</td><td><code>{e(b.run_id[:12])}"
            f"</code></td><td>{e(b.batch or '')}</td><td>{e(b.exit_status)}</td>"
            f"<td>{e(b.disposition or '—')}</td><td>{'yes' if b.right_first_time else 'no'}</td>"
            f"<td>{'simulated' if b.simulated else 'real'}</td>" + "".join(cells) + "</tr>"
        )
    return (
        "<table><thead><tr><th>#</th><th>started (UTC)</th><th>run</th><th>batch</th>"
        f"<th>exit</th><th>disposition</th><th>right first time</th><th>batch kind</th>"
        f"{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _protocol_html(
    name: str, series: Sequence[Trend], index: int, selection: Selection | None
) -> str:
    e = html.escape
    batches = [p.batch for p in series[0].points] if series else []
    selection = selection or select_batches(batches, include_simulated=True)
    right = sum(b.right_first_time for b in batches)
    rate = f"{right} of {len(batches)} ({100 * right / len(batches):.0f} %)" if batches else "—"
    flagged = sum(len(t.flagged) for t in series)
    versions = sorted({b.protocol_version for b in batches})
    return (
        f'<section id="protocol-{index}"><h2>{e(name)}</h2>'
        f"<p>{len(batches)} finished batches (protocol versions {e(', '.join(versions))}); "
        f"right first time: <strong>{rate}</strong>; out-of-trend values: "
        f"<strong>{flagged}</strong>.</p>"
        f'<p class="basis {e(selection.basis)}">Batches trended: {e(selection.describe())}.</p>'
        + "".join(_trend_html(t) for t in series)
        + "<h3>Batches</h3>"
        + _table_html(series)
        + "</section>"
    )


def write_trends_html(
    trends: Mapping[str, Sequence[Trend]],
    path: Path,
    *,
    generated_at: datetime,
    source: str = "",
    selections: Mapping[str, Selection] | None = None,
) -> Path:
    """Write ``trends.html``: one section per protocol, saying which batches it trends
    (``selections``: real, simulated only, or mixed; else read from the batches)."""
    chosen = selections or {}
    e = html.escape
    nav = "".join(
        f'<li><a href="#protocol-{i}">{e(name)}</a></li>' for i, name in enumerate(trends)
    )
    body = "".join(
        _protocol_html(name, s, i, chosen.get(name)) for i, (name, s) in enumerate(trends.items())
    )
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<title>Trends across batches</title>"
        f"<style>{_STYLE}</style></head><body><h1>Trends across batches</h1>"
        f"<p class=note>Generated {e(_iso(generated_at))} by cellauto {e(__version__)}"
        + (f" from {e(source)}" if source else "")
        + ". Control limits: mean ± 3 sigma (sample standard deviation) over the baseline "
        "batches. Out of trend: a value outside the limits, or the "
        f"{RUN_LENGTH}th or later of {RUN_LENGTH} consecutive values on one side of the mean "
        f"(Nelson rule 2, with a run of {RUN_LENGTH} as in common pharmaceutical trending "
        "practice; Nelson's paper uses 9). Right first time: the run completed with no "
        "deviation and, when disposed, was released. Simulated batches are trended apart from "
        "real ones: a protocol's real batches when it has any, its simulated ones when it "
        "has none, both (marked) only when asked.</p>"
        f"<nav><ul>{nav}</ul></nav>{body}</body></html>\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document, encoding="utf-8")
    return path
