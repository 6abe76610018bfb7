"""``cellauto runs | show | verify | export``: read the journal, never write it."""

from __future__ import annotations

import argparse
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cellauto.cli._db import add_db_argument
from cellauto.errors import BadInputError
from cellauto.records import Journal, export_run, verify_journal, verify_run
from cellauto.records.container_replay import containers_problem
from cellauto.records.export_site import export_site
from cellauto.records.ledger_check import LedgerCheck
from cellauto.records.signature_check import Confirmation, SignatureFinding, journal_signatures
from cellauto.records.wording import (
    SIGNATURE_INDENT,
    describe,
    describe_io,
    format_duration,
    iso,
)


def add_parsers(sub: Any) -> None:
    def db(p: argparse.ArgumentParser) -> None:
        add_db_argument(p)

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
        help="check hash chains, the signed ledger and seals",
        description="Recompute every run's hash chain and the site chain (accounts, "
        "training, signatures) and check them against the journal's signed ledger (run "
        "begun, anchors, seals, site anchors); exit 1 naming the first broken record "
        "or ledger entry. Prints the ledger head: keep it elsewhere and pass it with --head "
        "later to detect the file being rolled back to an older copy.",
    )
    p.add_argument("run_id", nargs="?", metavar="RUN_ID")
    p.add_argument(
        "--public-key",
        type=Path,
        metavar="PATH",
        help="the trusted public key (.pub) to check signatures with (default: the .pub "
        "beside the signing key, $CELLAUTO_SIGNING_KEY.pub)",
    )
    p.add_argument(
        "--head",
        metavar="HASH",
        help="a ledger head printed by an earlier verify: it must still be in the ledger",
    )
    db(p)
    p.set_defaults(handler=verify_command)

    p = sub.add_parser(
        "export",
        help="export a run",
        description="One CSV per record kind plus the full record as JSON (and "
        "signatures.csv for a run with operator tasks); with --site in place of RUN_ID, "
        "the site audit trail: one site_<kind>.csv per site record kind (accounts, "
        "passwords changed, sign-ins, training, signatures; never password material) "
        "and site.json.",
    )
    p.add_argument("run_id", nargs="?", metavar="RUN_ID")
    p.add_argument(
        "--site", action="store_true", help="export the site chain (accounts, training, ...)"
    )
    p.add_argument("--out", required=True, type=Path, metavar="DIR")
    p.add_argument(
        "--measurements",
        action="store_true",
        help="also measurements.csv (every numeric quantity of every reading and instrument "
        "response, long format, with units) and batch-values.csv",
    )
    p.add_argument(
        "--parquet",
        action="store_true",
        help="also measurements.parquet and batch-values.parquet (needs cellauto[analysis])",
    )
    p.add_argument(
        "--allotrope",
        action="store_true",
        help="also cell-counts.json: the cell counts as Allotrope cell-counting JSON (ASM)",
    )
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
        findings = journal_signatures(journal, run_id)
        review = _review_lines(journal, run_id)
    print(f"run {run_id}: {len(records)} records")
    marks = {(f.run_seq, f.position): f for f in findings}
    disagreeing = 0
    for record in records:
        text = describe(record)
        if record.payload.verdict_problem() is not None:
            disagreeing += 1
        if text is None:
            if not args.all:
                continue
            text = describe_io(record)
        text = _marked(text, record.seq, marks)
        print(f"{record.seq:>6}  {iso(record.process_time_s)}  {text}")
    if review:
        print("review and release (site records; wall time, UTC):")
        for line in review:
            print(line)
    code = 0
    if disagreeing:
        print(
            f"cellauto: warning: run {run_id}: {disagreeing} record(s) carry a verdict that "
            "their own values contradict (shown above as RECORD DISAGREES): the record was "
            "altered; run cellauto verify",
            file=sys.stderr,
        )
        code = 1
    unconfirmed = [f for f in findings if not f.confirmed]
    if unconfirmed:
        first = unconfirmed[0]
        print(
            f"cellauto: warning: run {run_id}: {len(unconfirmed)} signature(s) not confirmed by "
            f"the site chain (shown above as SIGNATURE RECORD MISSING or ALTERED); the first, "
            f"under record {first.run_seq}: {first.problem}; run cellauto verify",
            file=sys.stderr,
        )
        code = 1
    return code


def _review_lines(journal: Journal, run_id: str) -> list[str]:
    """The run's review and release site records, one line each (none yet: [])."""
    from cellauto.review.read import review_records
    from cellauto.review.wording import describe_review

    conn = journal.read_connection()
    lines = []
    for record in review_records(conn, run_id):
        when = datetime.fromtimestamp(record.wall_time_ns / 1e9, tz=UTC)
        text = describe_review(record.payload)
        lines.append(f"  s{record.seq:<5} {when:%Y-%m-%d %H:%M:%S}  {text}")
    return lines


_MARKS = {
    Confirmation.MISSING: "[SIGNATURE RECORD MISSING]",
    Confirmation.ALTERED: "[SIGNATURE RECORD ALTERED]",
    Confirmation.SIMULATED_IN_REAL_RUN: "[SIMULATED SIGNATURE IN A RUN ANSWERED BY PEOPLE]",
}


def _marked(text: str, seq: int, marks: dict[tuple[int, int], SignatureFinding]) -> str:
    """The record's lines, each signature line followed by its verdict when unconfirmed."""
    if not any(key[0] == seq for key in marks):
        return text
    lines = text.split("\n")
    index = 0
    for i, line in enumerate(lines):
        if line.startswith(SIGNATURE_INDENT + "signed:"):
            finding = marks.get((seq, index))
            index += 1
            if finding is not None and finding.confirmation in _MARKS:
                lines[i] = f"{line}  {_MARKS[finding.confirmation]}"
    return "\n".join(lines)


def verify_command(args: argparse.Namespace) -> int:
    with _open(args) as journal:
        from cellauto.site.replay import replay_problem  # accounts, training, signatures

        report = verify_journal(
            journal, public_key=args.public_key, head=args.head, site_replay=replay_problem
        )
        if args.run_id:
            run_id = journal.resolve_run_id(args.run_id)
            runs = [r for r in report.runs if r.run_id == run_id]
        else:
            runs = report.runs
        containers = containers_problem(journal.read_connection())
        summaries = _review_summaries(journal, [run.run_id for run in runs])
    broken = 0
    for run in runs:
        if not run.intact:
            broken += 1
            print(f"run {run.run_id}: BROKEN at record {run.first_broken_seq}: {run.reason}")
        elif run.sealed:
            print(f"run {run.run_id}: intact, {run.records} records, sealed, head {run.head_hash}")
            if summaries.get(run.run_id):
                print(f"  {summaries[run.run_id]}")
        else:
            broken += 1
            print(
                f"run {run.run_id}: INCOMPLETE: intact up to record {run.records - 1} (signed "
                f"up to record {run.anchored_seq}), but the run neither ended nor was sealed — "
                "it is running now, was interrupted, or its end was cut off"
            )
    if not report.runs:
        print(f"no runs in {args.db}")
    broken += _print_ledger(report.ledger)
    print(report.site.describe())
    broken += not report.site.intact
    broken += _print_containers(*containers)
    return 1 if broken else 0


def _review_summaries(journal: Journal, run_ids: list[str]) -> dict[str, str | None]:
    """Each run's review line (deviations, QC results, disposition), or None."""
    from cellauto.review.wording import review_summary

    conn = journal.read_connection()
    try:
        return {run_id: review_summary(conn, run_id) for run_id in run_ids}
    except sqlite3.OperationalError:  # a file from before the review tables
        return {}


def _print_containers(rows: int, problem: str | None) -> int:
    """Print whether the containers table agrees with the records; 1 if it does not."""
    if problem is not None:
        print(f"containers: BROKEN: {problem}")
        return 1
    if rows:
        print(f"containers: intact, {rows} rows")
    return 0


def _print_ledger(ledger: LedgerCheck) -> int:
    """Print the ledger's verdict and the key used; return 1 if the ledger is broken."""
    for problem in ledger.problems:
        print(f"ledger: BROKEN at entry {problem.entry_seq}: {problem.reason}")
    if ledger.intact:
        print(f"ledger: intact, {ledger.entries} entries, head {ledger.head_hash}")
    key = ledger.key
    if key.external:
        print(f"signatures checked with the public key {key.fingerprint} from {key.source}")
    elif key.hex is not None:
        print(
            f"warning: signatures checked only with the journal's own copy of its public key "
            f"({key.fingerprint}): someone who can edit the file could have replaced it; pass "
            "--public-key with the .pub kept beside the signing key",
            file=sys.stderr,
        )
        print(f"signatures checked with the journal's own copy of its public key {key.fingerprint}")
    return 0 if ledger.intact else 1


def export_command(args: argparse.Namespace) -> int:
    if args.site == (args.run_id is not None):
        raise BadInputError(
            "export takes a RUN_ID or --site (the site audit trail), not "
            + ("both" if args.site else "neither")
            + "; e.g. cellauto export RUN_ID --out DIR, cellauto export --site --out DIR"
        )
    analysis = [f"--{name}" for name in _ANALYSIS if getattr(args, name)]
    if args.site:
        if analysis:
            raise BadInputError(
                f"{', '.join(analysis)} export a run's measurements, not the site chain; "
                "give a RUN_ID in place of --site"
            )
        return _export_site(args)
    if args.parquet:
        from cellauto.review._optional import analysis_module

        analysis_module("pyarrow")  # refuse before anything is written
    with _open(args) as journal:
        run_id = journal.resolve_run_id(args.run_id)
        report = verify_run(journal, run_id)
        files = export_run(journal, run_id, args.out)
        if analysis:
            files += _export_analysis(journal, run_id, args)
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


_ANALYSIS = ("measurements", "parquet", "allotrope")


def _export_analysis(journal: Journal, run_id: str, args: argparse.Namespace) -> list[Path]:
    """The files of --measurements, --parquet and --allotrope."""
    from cellauto.review import measurements_io as io
    from cellauto.review.allotrope import write_cell_counts
    from cellauto.review.measurements import batch_values, measurements

    out: Path = args.out
    files: list[Path] = []
    if args.measurements or args.parquet:
        rows = measurements(journal, run_id)
        values = batch_values(journal, run_id)
        unitless = sorted({m.quantity for m in rows if not m.unit})
        if unitless:
            print(
                f"cellauto: warning: no unit is known for {', '.join(unitless)}: exported "
                "with an empty unit (add them to cellauto/review/units.py)",
                file=sys.stderr,
            )
        if args.measurements:
            files.append(io.write_measurements_csv(rows, out / "measurements.csv"))
            files.append(io.write_batch_values_csv(values, out / "batch-values.csv"))
        if args.parquet:
            files.append(io.write_measurements_parquet(rows, out / "measurements.parquet", run_id))
            files.append(
                io.write_batch_values_parquet(values, out / "batch-values.parquet", run_id)
            )
    if args.allotrope:
        files.append(write_cell_counts(journal, run_id, out / "cell-counts.json"))
    return files


def _export_site(args: argparse.Namespace) -> int:
    with _open(args) as journal:
        files, report = export_site(journal, args.out)
    for file in files:
        print(file)
    if not report.intact:
        print(
            f"cellauto: warning: the site chain is exported but {report.describe()}; run "
            "cellauto verify",
            file=sys.stderr,
        )
        return 1
    return 0
