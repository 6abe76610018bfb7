"""``cellauto db init`` and ``cellauto copy``: a journal's database, and moving a journal
between SQLite and PostgreSQL.

``db init --db LOCATION`` creates an empty journal there (an SQLite file, or the schema of
a ``postgresql://`` URL: ``#schema`` or ``?options=-csearch_path%3Dschema``, default
``cellauto``); a journal already there is left as it is. ``copy --from SRC --to DST``
copies a journal into an empty location, either way, verifies both sides and prints both
ledger heads: exit 0 only if they are the same (see :mod:`cellauto.records.copy`).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from cellauto.errors import JournalOpenError
from cellauto.records.backend import DB_ENV, DEFAULT_DB, Location

__all__ = ["add_parsers"]


def _location(value: str) -> str:
    """A journal location of either backend (exit 2 with why when it is not one)."""
    try:
        Location.parse(value)
    except JournalOpenError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def add_parsers(sub: Any) -> None:
    dbp = sub.add_parser("db", help="a journal's database: init", description=__doc__)
    verbs = dbp.add_subparsers(dest="verb", required=True, parser_class=type(dbp))
    p = verbs.add_parser(
        "init",
        help="create an empty journal (SQLite file or PostgreSQL schema)",
        description="Create an empty journal at --db: an SQLite file, or a schema of a "
        "PostgreSQL database (postgresql://USER@HOST/DB#SCHEMA). A journal already there "
        "is left as it is (its version is checked).",
    )
    p.add_argument(
        "--db",
        default=os.environ.get(DB_ENV) or DEFAULT_DB,
        type=_location,
        help=f"file path or postgresql:// URL (default ${DB_ENV}, else ./{DEFAULT_DB})",
    )
    p.set_defaults(handler=init_command)

    p = sub.add_parser(
        "copy",
        help="copy a journal between SQLite and PostgreSQL",
        description="Copy the journal at --from into the empty --to (a file path or a "
        "postgresql:// URL, either way), in one transaction; verify both and print both "
        "ledger heads. Exit 0 only if the copy reads as the source: same ledger head, "
        "same runs, same head hash of every run.",
    )
    p.add_argument("--from", dest="source", required=True, type=_location, metavar="SRC")
    p.add_argument("--to", dest="destination", required=True, type=_location, metavar="DST")
    p.add_argument(
        "--allow-running",
        action="store_true",
        help="copy even if a run has a live controller (its later records are not copied)",
    )
    p.add_argument(
        "--unverified",
        action="store_true",
        help="copy a source that does not verify, as it is (evidence); exit 1",
    )
    p.add_argument("--public-key", type=Path, help="the public key to verify both sides with")
    p.set_defaults(handler=copy_command)


def init_command(args: argparse.Namespace) -> int:
    from cellauto.records.backend import open_backend

    where = Location.parse(args.db)
    backend = open_backend(where)
    conn = backend.connect(create=True, timeout_s=30.0)
    try:
        (version,) = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
        (runs,) = conn.execute("SELECT count(DISTINCT run_id) FROM records").fetchall()
    finally:
        conn.close()
    print(f"journal {where}: schema version {version[0]}, {runs[0]} runs")
    return 0


def copy_command(args: argparse.Namespace) -> int:
    from cellauto.records.copy import copy_journal
    from cellauto.site.replay import replay_problem

    report = copy_journal(
        args.source,
        args.destination,
        allow_running=args.allow_running,
        unverified=args.unverified,
        public_key=args.public_key,
        site_replay=replay_problem,
    )
    total = sum(report.rows.values())
    records = report.rows.get("records", 0)
    print(
        f"copied {total} rows ({records} records, {report.rows.get('ledger', 0)} ledger "
        f"entries, {report.rows.get('site_records', 0)} site records) from {report.source} "
        f"to {report.destination} in {report.seconds:.1f} s"
    )
    for name, side in (("from", report.source_report), ("to", report.destination_report)):
        if side is None:
            continue
        runs = sum(1 for run in side.runs if run.intact)
        verdict = "intact" if side.ledger.intact else "BROKEN"
        print(
            f"{name}: ledger: {verdict}, {side.ledger.entries} entries, head "
            f"{side.ledger.head_hash}; {runs} of {len(side.runs)} runs intact; "
            f"{side.site.describe()}"
        )
    if report.unverified:
        print("the source did not verify: it was copied as it is (--unverified)")
    for difference in report.differences:
        print(f"DIFFERENT: {difference}")
    return 0 if report.same and not report.unverified else 1
