"""``cellauto runs | show | verify | export``: read the journal, never write it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cellauto.records import Journal, export_run, verify_all, verify_run
from cellauto.records.wording import describe, describe_io, format_duration, iso

DEFAULT_DB = "cellauto.db"


def add_parsers(sub: Any) -> None:
    def db(p: argparse.ArgumentParser) -> None:
        p.add_argument("--db", default=DEFAULT_DB, help=f"journal file (default ./{DEFAULT_DB})")

    p = sub.add_parser("runs", help="list runs", description="One line per run.")
    db(p)
    p.set_defaults(handler=runs_command)

    p = sub.add_parser(
        "show",
        help="a run's timeline",
        description="Steps, checks, deviations and state changes of one run.",
    )
    p.add_argument("run_id", metavar="RUN_ID", help="run id or a unique prefix of it")
    p.add_argument("--all", action="store_true", help="also instrument commands and readings")
    db(p)
    p.set_defaults(handler=show_command)

    p = sub.add_parser(
        "verify",
        help="check hash chains",
        description="Recompute the hash chains; exit 1 naming the first broken record.",
    )
    p.add_argument("run_id", nargs="?", metavar="RUN_ID")
    db(p)
    p.set_defaults(handler=verify_command)

    p = sub.add_parser(
        "export",
        help="export a run",
        description="One CSV per record kind plus the full record as JSON.",
    )
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--out", required=True, type=Path, metavar="DIR")
    db(p)
    p.set_defaults(handler=export_command)


def _open(args: argparse.Namespace) -> Journal:
    return Journal(args.db, create=False)


def runs_command(args: argparse.Namespace) -> int:
    with _open(args) as journal:
        summaries = journal.runs()
    if not summaries:
        print(f"no runs in {args.db}")
        return 0
    print(
        f"{'RUN ID':<14}{'PROTOCOL':<24}{'VERSION':<10}{'STATE':<16}{'STARTED (process)':<21}"
        f"DURATION"
    )
    for s in summaries:
        print(
            f"{s.run_id[:12]:<14}{(s.protocol_name or '?')[:23]:<24}"
            f"{(s.protocol_version or '?')[:9]:<10}"
            f"{s.state if s.sealed else s.state + ' (open)':<16}"
            f"{iso(s.started_process_time_s):<21}{format_duration(s.duration_s)}"
        )
    return 0


def show_command(args: argparse.Namespace) -> int:
    with _open(args) as journal:
        run_id = journal.resolve_run_id(args.run_id)
        records = journal.records(run_id)
    print(f"run {run_id}: {len(records)} records")
    disagreeing = 0
    for record in records:
        text = describe(record)
        if record.payload.verdict_problem() is not None:
            disagreeing += 1
        if text is None:
            if not args.all:
                continue
            text = describe_io(record)
        print(f"{record.seq:>6}  {iso(record.process_time_s)}  {text}")
    if disagreeing:
        print(
            f"cellauto: warning: run {run_id}: {disagreeing} record(s) carry a verdict that "
            "their own values contradict (shown above as RECORD DISAGREES): the record was "
            "altered; run cellauto verify",
            file=sys.stderr,
        )
        return 1
    return 0


def verify_command(args: argparse.Namespace) -> int:
    with _open(args) as journal:
        if args.run_id:
            reports = [verify_run(journal, journal.resolve_run_id(args.run_id))]
        else:
            reports = verify_all(journal)
    broken = 0
    for report in reports:
        if not report.intact:
            broken += 1
            print(
                f"run {report.run_id}: BROKEN at record {report.first_broken_seq}: {report.reason}"
            )
        elif report.sealed:
            print(
                f"run {report.run_id}: intact, {report.records} records, sealed, "
                f"head {report.head_hash}"
            )
        elif report.ended:
            print(
                f"run {report.run_id}: intact, {report.records} records, ended but not "
                f"sealed, head {report.head_hash}"
            )
        else:
            broken += 1
            print(
                f"run {report.run_id}: INCOMPLETE: intact up to record {report.records - 1}, "
                "but the run neither ended nor was sealed — it is running now, was "
                "interrupted, or its end was cut off"
            )
    if not reports:
        print(f"no runs in {args.db}")
    return 1 if broken else 0


def export_command(args: argparse.Namespace) -> int:
    with _open(args) as journal:
        run_id = journal.resolve_run_id(args.run_id)
        report = verify_run(journal, run_id)
        files = export_run(journal, run_id, args.out)
    for file in files:
        print(file)
    if not report.intact:
        print(
            f"cellauto: warning: run {run_id} is exported but its chain is BROKEN at record "
            f"{report.first_broken_seq}: {report.reason}",
            file=sys.stderr,
        )
        return 1
    return 0
