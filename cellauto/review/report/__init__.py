"""The batch record report of one run: a self-contained HTML file and a PDF.

:func:`write_report` is the whole job; :func:`~.batch_record.build_batch_record` gives the
data without rendering. matplotlib and reportlab (the ``[report]`` extra) are imported
only when a report is made: a controller without them runs, and ``cellauto report`` then
says to install ``cellauto[report]``.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cellauto.errors import BadInputError

if TYPE_CHECKING:
    from cellauto.records.journal import Journal

__all__ = ["HTML_NAME", "PDF_NAME", "REPORT_EXTRA_HINT", "require_report_extra", "write_report"]

HTML_NAME = "batch-record.html"
PDF_NAME = "batch-record.pdf"
REPORT_EXTRA_HINT = 'install the report extra: pip install "cellauto[report]"'

_log = logging.getLogger(__name__)


def require_report_extra(pdf: bool = True) -> None:
    """BadInputError naming the fix when matplotlib (or, for a PDF, reportlab) is missing."""
    needed = ["matplotlib"] + (["reportlab"] if pdf else [])
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        raise BadInputError(
            f"the batch record report needs {' and '.join(missing)}, which are not installed;"
            f" {REPORT_EXTRA_HINT}"
        )


def write_report(
    journal: Journal,
    run_id: str,
    out_dir: Path,
    *,
    generated_at: datetime | None = None,
    pdf: bool = True,
) -> list[Path]:
    """Write ``batch-record.html`` (and ``batch-record.pdf``) of ``run_id`` into ``out_dir``
    (created if missing); return their paths. The same records and the same
    ``generated_at`` give byte-identical files; None means now."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise BadInputError(
            f"--out {str(out_dir)!r} is a file, not a folder; name a new or existing folder"
        )
    require_report_extra(pdf)
    from cellauto.review.report.batch_record import build_batch_record
    from cellauto.review.report.html import render_html
    from cellauto.review.report.plots import draw_all

    moment = generated_at if generated_at is not None else datetime.now(UTC)
    if moment.tzinfo is None:
        raise BadInputError(
            f"generated_at {moment.isoformat()} has no time zone; give one (e.g. ...Z)"
        )
    record = build_batch_record(journal, run_id, generated_at=moment.astimezone(UTC))
    figures = draw_all(record.series, svg=True, png=pdf)
    out_dir.mkdir(parents=True, exist_ok=True)
    html_text = render_html(record, figures)
    # both files are made under temporary names first and renamed into place together:
    # a failure leaves neither half a report nor one file of another moment, and a
    # rename replaces a link of that name instead of writing through it
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".batch-record-") as scratch:
        made = {HTML_NAME: Path(scratch) / HTML_NAME}
        made[HTML_NAME].write_text(html_text, encoding="utf-8")
        if pdf:
            from cellauto.review.report.pdf import render_pdf

            made[PDF_NAME] = render_pdf(record, figures, Path(scratch) / PDF_NAME)
        paths = []
        for name, path in made.items():
            os.replace(path, out_dir / name)
            paths.append(out_dir / name)
    _log.info("batch record of run %s written to %s", run_id, out_dir)
    return paths
