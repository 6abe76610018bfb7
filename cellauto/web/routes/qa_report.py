"""The batch record report of a run in the browser: the HTML of
:mod:`cellauto.review.report` as it is (inline CSS and SVG, no script), under a CSP of
its own that allows exactly that and sandboxes it; and its PDF. Both need the
``[report]`` extra: without it the page says to install it (422).
"""

from __future__ import annotations

import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path

from starlette.responses import HTMLResponse, Response

from cellauto.records import Journal
from cellauto.review.report import require_report_extra
from cellauto.web.context import Ctx
from cellauto.web.routes.qa_common import resolve_run
from cellauto.web.routes_table import RouteSpec

__all__ = ["REPORT_CSP", "ROUTES"]

REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox"
"""The report's own policy: its inline style and images, nothing else, no script."""

_PLOTTING = threading.Lock()
"""matplotlib's pyplot is not thread-safe: one report is drawn at a time."""


def _html(journal: Journal, given: str) -> str:
    require_report_extra(pdf=False)
    from cellauto.review.report.batch_record import build_batch_record
    from cellauto.review.report.html import render_html
    from cellauto.review.report.plots import draw_all

    run_id = resolve_run(journal, given)
    record = build_batch_record(journal, run_id, generated_at=datetime.now(UTC))
    with _PLOTTING:
        figures = draw_all(record.series, svg=True, png=False)
    return render_html(record, figures)


def _pdf(journal: Journal, given: str) -> tuple[str, bytes]:
    require_report_extra(pdf=True)
    from cellauto.review.report.batch_record import build_batch_record
    from cellauto.review.report.pdf import render_pdf
    from cellauto.review.report.plots import draw_all

    run_id = resolve_run(journal, given)
    record = build_batch_record(journal, run_id, generated_at=datetime.now(UTC))
    with _PLOTTING:
        figures = draw_all(record.series, svg=False, png=True)
    with tempfile.TemporaryDirectory(prefix="cellauto-report-") as scratch:
        path = render_pdf(record, figures, Path(scratch) / "batch-record.pdf")
        return run_id, path.read_bytes()


async def report(ctx: Ctx) -> Response:
    given = ctx.param("run_id")
    html = await ctx.read(lambda journal: _html(journal, given))
    return HTMLResponse(html, headers={"content-security-policy": REPORT_CSP})


async def report_pdf(ctx: Ctx) -> Response:
    given = ctx.param("run_id")
    run_id, pdf = await ctx.read(lambda journal: _pdf(journal, given))
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"content-disposition": f'inline; filename="batch-record-{run_id[:12]}.pdf"'},
    )


ROUTES = (
    RouteSpec("/runs/{run_id}/report", "GET", report, "session"),
    RouteSpec("/runs/{run_id}/report.pdf", "GET", report_pdf, "session"),
)
