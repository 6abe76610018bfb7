"""``cellauto qc``: a batch's release tests and their results.

``tests`` shows a run's release plan and where each test stands (reads only). ``add``
enters a result by hand (QC, signed); ``verify`` is a second person's check of it (QC or
QA, never the enterer); ``invalidate`` takes a result out of consideration (QA, signed);
``import`` reads a LIMS export through a declared schema (QC, signed; ``--dry-run``
writes nothing); ``schema define`` declares a LIMS export mapping (QA, signed), ``schema
list`` and ``schema show`` read them. Acts take ``--as USER`` and that person's password
(typed, or one line of stdin with ``--password-stdin``). Exit 0 done; 2 a refusal
(journaled first) or bad input (nothing written); 1 otherwise.
"""

from __future__ import annotations

import argparse
import sqlite3
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from cellauto.errors import BadInputError
from cellauto.records.backend import Conn
from cellauto.records.release_plan import ReleasePlan, ReleaseTest
from cellauto.review.ids import run_for_key
from cellauto.review.lims import check_import, define_schema, import_results, schema_of
from cellauto.review.qc import QcResultInput, add_result, invalidate_result, verify_result
from cellauto.review.qc_eval import borderline
from cellauto.review.read import QcRow, lims_schema, read_qc_results, read_release_plan
from cellauto.site.history import reading_journal

from .people_cmds import acting_options, common_options, print_table, sign_in, store_of
from .prompt import Passwords

BUILTIN_SCHEMAS = ("sim", "sim-json")


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from exc


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from exc


def _acting(p: argparse.ArgumentParser) -> None:
    acting_options(p, reason=False)
    p.add_argument("--reason", default="", help="why (journaled)")
    common_options(p)


def add_parsers(sub: Any) -> None:
    qc = sub.add_parser("qc", help="QC results of a batch", description=__doc__)
    verbs = qc.add_subparsers(dest="verb", required=True, parser_class=type(qc))

    p = verbs.add_parser("tests", help="a run's release tests and where each stands")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--json", action="store_true", help="one JSON array")
    common_options(p, acting=False)
    p.set_defaults(handler=tests_command)

    p = verbs.add_parser("add", help="enter a result by hand (QC; signed)")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--test", required=True, metavar="NAME")
    form = p.add_mutually_exclusive_group(required=True)
    form.add_argument("--value", type=_number, metavar="X", help="a numeric result")
    form.add_argument("--text", metavar="WORD", help="a qualitative result ('no growth')")
    p.add_argument("--unit", metavar="U", help="default: the test's unit")
    p.add_argument("--sample", required=True, metavar="ID", help="the lab's sample id")
    p.add_argument("--din", metavar="DIN", help="DIN (+ flag) of the container sampled")
    p.add_argument("--coi", metavar="COI", help="the sample's COI (default: the batch's)")
    p.add_argument("--method", required=True, metavar="M")
    p.add_argument("--analyst", required=True, metavar="NAME")
    p.add_argument("--tested-on", type=_date, required=True, metavar="DATE")
    p.add_argument("--instrument", required=True, metavar="ASSET")
    _acting(p)
    p.set_defaults(handler=add_command)

    p = verbs.add_parser("verify", help="check a hand-entered result (QC or QA; signed)")
    p.add_argument("result_id", metavar="RESULT_ID")
    _acting(p)
    p.set_defaults(handler=verify_command)

    p = verbs.add_parser("invalidate", help="take a result out of consideration (QA; signed)")
    p.add_argument("result_id", metavar="RESULT_ID")
    p.add_argument("--cause", required=True, metavar="TEXT", help="the lab error confirmed")
    p.add_argument("--deviation", metavar="DEV_ID", help="the investigation that found it")
    _acting(p)
    p.set_defaults(handler=invalidate_command)

    p = verbs.add_parser("import", help="import a LIMS export (QC; signed)")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("--schema", required=True, metavar="NAME", help="a declared LIMS schema")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="check and show; nobody signs in and nothing is written",
    )
    acting_options(p, required=False, reason=False)
    p.add_argument("--reason", default="", help="why (journaled)")
    common_options(p)
    p.set_defaults(handler=import_command)

    schema = verbs.add_parser("schema", help="LIMS export schemas")
    schema_verbs = schema.add_subparsers(dest="schema_verb", required=True)
    p = schema_verbs.add_parser("define", help="declare a LIMS schema (QA; signed)")
    p.add_argument("name", metavar="NAME")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", type=Path, metavar="MAP.json", help="the schema as JSON")
    source.add_argument(
        "--builtin", choices=BUILTIN_SCHEMAS, help="the simulated LIMS's export (CSV or JSON)"
    )
    _acting(p)
    p.set_defaults(handler=schema_define_command)
    p = schema_verbs.add_parser("list", help="the declared schemas")
    common_options(p, acting=False)
    p.set_defaults(handler=schema_list_command)
    p = schema_verbs.add_parser("show", help="one schema as JSON (newest version)")
    p.add_argument("name", metavar="NAME")
    common_options(p, acting=False)
    p.set_defaults(handler=schema_show_command)


def run_id_of(conn: Conn, text: str) -> str:
    text = text.strip().lower()
    if conn.execute("SELECT 1 FROM records WHERE run_id = ? LIMIT 1", (text,)).fetchone():
        return text
    found = run_for_key(conn, text[:12]) if len(text) >= 12 else None
    if found is None or not found.startswith(text):
        raise BadInputError(f"no run {text!r} in this journal; `cellauto runs` lists them")
    return found


def _spec(test: ReleaseTest) -> str:
    described = test.spec.describe()
    if test.normalise is not None:
        described += f" (from {test.unit}, normalised)"
    return described


def _state(rows: list[QcRow]) -> str:
    valid = [r for r in rows if r.status == "valid"]
    if not valid:
        return "missing" if not rows else "invalidated"
    row = valid[-1]
    if row.source == "manual" and row.verified_by is None:
        return f"{row.verdict}, unverified"
    return row.verdict


def _observed(row: QcRow) -> str:
    return row.observed if isinstance(row.observed, str) else f"{row.observed:.4g}"


def tests_command(args: argparse.Namespace) -> int:
    with reading_journal(args.db) as conn:
        run_id = run_id_of(conn, args.run_id)
        plan: ReleasePlan | None = read_release_plan(conn, run_id)
        results = read_qc_results(conn, run_id)
    if plan is None:
        raise BadInputError(f"run {run_id} has no release plan (it started before release tests)")
    shown = []
    for test in plan.tests:
        rows = [r for r in results if r.test == test.name]
        valid = [r for r in rows if r.status == "valid"]
        shown.append(
            {
                "test": test.name,
                "method": test.method,
                "unit": test.unit,
                "spec": _spec(test),
                "sample": test.sample,
                "required": test.required,
                "days_to_result": test.days_to_result,
                "state": _state(rows),
                "borderline": bool(valid) and borderline(test, valid[-1].observed),
                "result_id": valid[-1].result_id if valid else None,
                "observed": valid[-1].observed if valid else None,
                "results": [r.result_id for r in rows],
            }
        )
    if args.json:
        print(orjson.dumps(shown, option=orjson.OPT_INDENT_2).decode())
        return 0
    print(f"{plan.product}: run {run_id}, COI {plan.coi or '-'}, {len(plan.tests)} release tests")
    if not plan.tests:
        return 0
    table = [["TEST", "SPEC", "SAMPLE", "DAYS", "STATE", "RESULT", "OBSERVED"]]
    by_id = {r.result_id: r for r in results}
    for row in shown:
        result = by_id.get(str(row["result_id"]))
        table.append(
            [
                str(row["test"]),
                str(row["spec"]),
                str(row["sample"] or "-"),
                str(row["days_to_result"] if row["days_to_result"] is not None else "-"),
                str(row["state"]) + (" (borderline)" if row["borderline"] else ""),
                str(row["result_id"] or "-"),
                _observed(result) if result is not None else "-",
            ]
        )
    print_table(table)
    return 0


def add_command(args: argparse.Namespace) -> int:
    entry = QcResultInput(
        test=args.test,
        sample_id=args.sample,
        method=args.method,
        analyst=args.analyst,
        tested_on=args.tested_on,
        instrument=args.instrument,
        value=args.value,
        text=args.text,
        unit=args.unit,
        din=args.din,
        coi=args.coi,
    )
    with store_of(args) as store:
        with store.reading() as conn:
            run_id = run_id_of(conn, args.run_id)
        who = sign_in(store, Passwords(args.password_stdin), args.as_user, f"qc add {run_id}")
        act = add_result(store, who, run_id, entry, reason=args.reason)
    print(
        f"{act.result_id}: {args.test} {act.verdict} (compared as {act.observed!r}), signed by"
        f" {args.as_user}; site records {act.ref.seq}, {act.signature.seq}"
    )
    if act.deviation_id is not None:
        print(f"out of specification: deviation {act.deviation_id} opened")
    print("a hand entry counts for release once another person verifies it (`cellauto qc verify`)")
    return 0


def verify_command(args: argparse.Namespace) -> int:
    with store_of(args) as store:
        who = sign_in(
            store, Passwords(args.password_stdin), args.as_user, f"qc verify {args.result_id}"
        )
        done = verify_result(store, who, args.result_id, reason=args.reason)
    print(
        f"{args.result_id} verified by {args.as_user}; site records {done.ref.seq},"
        f" {done.signature.seq}"
    )
    return 0


def invalidate_command(args: argparse.Namespace) -> int:
    with store_of(args) as store:
        who = sign_in(
            store, Passwords(args.password_stdin), args.as_user, f"qc invalidate {args.result_id}"
        )
        done = invalidate_result(
            store,
            who,
            args.result_id,
            cause=args.cause,
            deviation_id=args.deviation,
            reason=args.reason,
        )
    print(
        f"{args.result_id} invalidated by {args.as_user}; site records {done.ref.seq},"
        f" {done.signature.seq}"
    )
    return 0


def import_command(args: argparse.Namespace) -> int:
    with store_of(args) as store:
        with store.reading() as conn:
            run_id = run_id_of(conn, args.run_id)
        if args.dry_run:  # a check of the file: no sign-in, nothing written
            outcome = check_import(store, run_id, args.file, schema_name=args.schema)
        else:
            if not args.as_user:
                raise BadInputError("give --as USER: an import is signed by who performs it")
            who = sign_in(
                store, Passwords(args.password_stdin), args.as_user, f"qc import {run_id}"
            )
            outcome = import_results(
                store, who, run_id, args.file, schema_name=args.schema, reason=args.reason
            )
    table = [["RESULT", "TEST", "ROW", "VALUE", "OBSERVED", "VERDICT"]]
    for body, observed, verdict in zip(
        outcome.results, outcome.observed, outcome.verdicts, strict=True
    ):
        value = body.text if body.text is not None else f"{body.value:g} {body.unit}"
        shown = observed if isinstance(observed, str) else f"{observed:.4g}"
        table.append([body.result_id, body.test, str(body.lims_row), value, shown, verdict])
    print_table(table)
    ignored = (
        f"; {outcome.ignored_rows} rows of other batches ignored" if outcome.ignored_rows else ""
    )
    if outcome.ref is None:
        print(
            f"dry run: {len(outcome.results)} results would be imported{ignored}; nothing written"
        )
        return 0
    print(
        f"{len(outcome.results)} results imported from {args.file.name}{ignored}; site records"
        f" {outcome.ref.seq}, {outcome.signature.seq if outcome.signature else '-'}"
    )
    for deviation_id in outcome.deviations:
        print(f"out of specification: deviation {deviation_id} opened")
    return 0


def schema_define_command(args: argparse.Namespace) -> int:
    if args.builtin is not None:
        from cellauto.sim.qc import SIM_LIMS_JSON_SCHEMA, SIM_LIMS_SCHEMA

        schema = SIM_LIMS_SCHEMA if args.builtin == "sim" else SIM_LIMS_JSON_SCHEMA
    else:
        try:
            data = args.file.read_bytes()
        except OSError as exc:
            raise BadInputError(f"cannot read {args.file}: {exc.strerror}") from None
        schema = schema_of(data, source=str(args.file))
    with store_of(args) as store:
        who = sign_in(
            store, Passwords(args.password_stdin), args.as_user, f"qc schema define {args.name}"
        )
        defined = define_schema(store, who, args.name, schema, reason=args.reason)
    print(
        f"LIMS schema {args.name} v{defined.version} defined, signed by {args.as_user}; site"
        f" records {defined.ref.seq}, {defined.signature.seq}"
    )
    return 0


def schema_list_command(args: argparse.Namespace) -> int:
    with reading_journal(args.db) as conn:
        try:
            rows = conn.execute(
                "SELECT name, max(version), count(*) FROM lims_schemas GROUP BY name ORDER BY name"
            ).fetchall()
        except sqlite3.OperationalError:
            rows = []
        schemas = [(name, lims_schema(conn, name)) for name, _, _ in rows]
    if not schemas:
        print(f"no LIMS schemas in {args.db}")
        return 0
    table = [["NAME", "VERSION", "FORMAT", "TESTS", "SITE RECORD"]]
    for name, found in schemas:
        if found is not None:
            version, schema, ref = found
            table.append([name, str(version), schema.format, str(len(schema.tests)), str(ref.seq)])
    print_table(table)
    return 0


def schema_show_command(args: argparse.Namespace) -> int:
    with reading_journal(args.db) as conn:
        found = lims_schema(conn, args.name)
    if found is None:
        raise BadInputError(f"no LIMS schema {args.name!r}; `cellauto qc schema list` shows them")
    version, schema, ref = found
    shown = {"name": args.name, "version": version, "site_seq": ref.seq, **schema.model_dump()}
    print(orjson.dumps(shown, option=orjson.OPT_INDENT_2).decode())
    return 0
