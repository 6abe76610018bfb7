"""``cellauto report RUN_ID --out DIR``: the batch record of one run, as a self-contained
HTML file (``batch-record.html``) and a PDF (``batch-record.pdf``). Reads only.

Exit 0 written; 2 bad input (an unknown run, ``--out`` naming a file, a time without a
zone, the ``[report]`` extra not installed), naming the fix; nothing is written then.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path
from typing import Any

from cellauto.cli._db import add_db_argument
from cellauto.records import Journal

__all__ = ["add_parser", "report_command"]


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time (e.g. 2026-02-01T09:00:00Z)"
        ) from exc
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone; add Z or +HH:MM")
    return moment


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "report", help="the batch record of a run (HTML and PDF)", description=__doc__
    )
    p.add_argument("run_id", metavar="RUN_ID", help="a run id or a unique prefix of one")
    p.add_argument("--out", type=Path, required=True, help="folder to write the report into")
    p.add_argument("--no-pdf", action="store_true", help="write the HTML only")
    p.add_argument(
        "--generated-at",
        type=_moment,
        default=None,
        metavar="ISO",
        help="the report's generation time (default now); the same time gives the same bytes",
    )
    add_db_argument(p)
    p.set_defaults(handler=report_command)


def report_command(args: argparse.Namespace) -> int:
    from cellauto.errors import BadInputError
    from cellauto.review.report import require_report_extra, write_report

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise BadInputError(
            f"--out {str(out)!r} is a file, not a folder; name a new or existing folder"
        )
    require_report_extra(pdf=not args.no_pdf)
    with Journal(args.db, create=False) as journal:
        run_id = journal.resolve_run_id(args.run_id)
        paths = write_report(
            journal, run_id, out, generated_at=args.generated_at, pdf=not args.no_pdf
        )
    for path in paths:
        print(path)
    return 0
