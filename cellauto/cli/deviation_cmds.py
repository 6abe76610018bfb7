"""``cellauto deviations`` and ``cellauto deviation``: a batch's deviations, and the acts
on them.

Raising a deviation (anyone of the line, QC or QA), classifying it (QA), investigating it
(a supervisor or QA), closing or withdrawing it (QA, never the person who investigated
it) are each one signing: ``--as NAME`` and that person's password (typed, or one line of
stdin with ``--password-stdin``). ``deviations`` and ``deviation show`` read only.
Exit 0 done; 2 a refusal (journaled first) or bad input (nothing written); 1 otherwise
(an edited journal: run ``cellauto verify``).
"""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from cellauto.errors import BadInputError, RunNotFoundError
from cellauto.records import Journal
from cellauto.records._schema import site_row_filter
from cellauto.records.backend import Conn
from cellauto.records.kinds import RecordKind
from cellauto.records.refs import SITE_CHAIN
from cellauto.records.site_payloads import Signature, SiteKind
from cellauto.records.site_payloads_review import (
    Classification,
    ProductImpact,
    RootCauseCategory,
)
from cellauto.records.site_store import SiteStore
from cellauto.records.wording import describe, describe_signature
from cellauto.review.deviations import (
    DeviationAct,
    classify_deviation,
    close_deviation,
    investigate_deviation,
    raise_deviation,
    withdraw_deviation,
)
from cellauto.review.read import DeviationRow, confirm_run_review, read_deviation, read_deviations
from cellauto.review.wording import describe_review
from cellauto.site._chain import (
    StoredSiteRecord,
    stored_site_record,
    stored_site_records,
    stored_site_records_where,
)
from cellauto.site.auth import Authenticated
from cellauto.site.policy import site_zone
from cellauto.site.signatures import shown

from .people_cmds import acting_options, common_options, print_table, sign_in, store_of
from .prompt import Passwords

_CATEGORIES = ", ".join(c.value for c in RootCauseCategory)


def _when(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO date and time") from exc
    if when.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset (2026-12-21T10:14+01:00)")
    return when


def _category(text: str) -> RootCauseCategory:
    try:
        return RootCauseCategory(text.lower().replace("-", " ").replace("_", " "))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"category {text!r} is none of {_CATEGORIES}") from exc


def _acting(p: argparse.ArgumentParser) -> None:
    acting_options(p, reason=False)
    p.add_argument("--reason", default="", help="why (journaled)")
    common_options(p)


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("deviations", help="a batch's deviations", description=__doc__)
    p.add_argument("run_id", nargs="?", metavar="RUN_ID", help="one run (default: every run)")
    p.add_argument("--open", action="store_true", help="only those not closed nor withdrawn")
    p.add_argument("--json", action="store_true", help="one JSON array")
    common_options(p, acting=False)
    p.set_defaults(handler=list_command)

    deviation = sub.add_parser(
        "deviation", help="one deviation: show, raise, ...", description=__doc__
    )
    verbs = deviation.add_subparsers(dest="verb", required=True, parser_class=type(deviation))

    p = verbs.add_parser("show", help="a deviation and its signed transitions")
    p.add_argument("deviation_id", metavar="DEV_ID")
    p.add_argument("--json", action="store_true")
    common_options(p, acting=False)
    p.set_defaults(handler=show_command)

    p = verbs.add_parser("raise", help="raise a deviation on a run (signed performed)")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--title", required=True, help="5 to 120 characters")
    p.add_argument("--description", required=True, help="10 to 4000 characters")
    p.add_argument("--step", help="a step of the run's plan (default: the whole batch)")
    p.add_argument("--observed-at", type=_when, metavar="ISO", help="when it was seen")
    p.add_argument("--hold", action="store_true", help="also request a Hold of the active run")
    _acting(p)
    p.set_defaults(handler=raise_command)

    p = verbs.add_parser("classify", help="classify (or, with --reason, reclassify); QA")
    p.add_argument("deviation_id", metavar="DEV_ID")
    p.add_argument("--class", dest="cls", required=True, choices=[c.value for c in Classification])
    p.add_argument("--impact", required=True, help="the impact assessment")
    p.add_argument("--other-batch", action="append", default=[], metavar="RUN_ID")
    _acting(p)
    p.set_defaults(handler=classify_command)

    p = verbs.add_parser("investigate", help="record the investigation (supervisor, QA)")
    p.add_argument("deviation_id", metavar="DEV_ID")
    p.add_argument("--root-cause", required=True)
    p.add_argument("--category", type=_category, required=True, help=_CATEGORIES)
    p.add_argument("--product-impact", required=True, choices=[i.value for i in ProductImpact])
    p.add_argument("--impact-detail", required=True)
    p.add_argument("--evidence", type=Path, action="append", default=[], metavar="FILE")
    _acting(p)
    p.set_defaults(handler=investigate_command)

    p = verbs.add_parser("close", help="close a deviation (QA; never its investigator)")
    p.add_argument("deviation_id", metavar="DEV_ID")
    p.add_argument("--conclusion", required=True)
    capa = p.add_mutually_exclusive_group()
    capa.add_argument("--capa", metavar="CAPA_ID")
    capa.add_argument("--no-capa-reason", metavar="TEXT")
    _acting(p)
    p.set_defaults(handler=close_command)

    p = verbs.add_parser("withdraw", help="withdraw a deviation raised in error (QA)")
    p.add_argument("deviation_id", metavar="DEV_ID")
    p.add_argument("--cause", required=True, help="why it was raised in error")
    acting_options(p, reason=False)
    common_options(p)
    p.set_defaults(handler=withdraw_command)


# -- reading ------------------------------------------------------------------------------
def _opened(conn: Conn, wall_ns: int | None) -> str:
    if wall_ns is None:
        return ""
    return datetime.fromtimestamp(wall_ns / 1e9, site_zone(conn)).strftime("%Y-%m-%d %H:%M")


def _run_id(journal: Journal, text: str) -> str:
    """The run a RUN_ID (or a unique prefix of one) names; an unknown one as given (the
    act refuses it, journaled)."""
    try:
        return journal.resolve_run_id(text)
    except RunNotFoundError as exc:
        if "ambiguous" in str(exc):
            raise
        return text


def list_command(args: argparse.Namespace) -> int:
    with Journal(args.db, create=False) as journal:
        run_id = None if args.run_id is None else journal.resolve_run_id(args.run_id)
        conn = journal.read_connection()
        rows = read_deviations(conn, run_id=run_id, open_only=args.open)
        for run in sorted({row.run_id for row in rows}):
            confirm_run_review(conn, run)  # an edited status is refused, never shown
        opened = [_opened(conn, row.opened_wall_ns) for row in rows]
    if args.json:
        print(orjson.dumps([row._asdict() for row in rows], option=orjson.OPT_INDENT_2).decode())
        return 0
    if not rows:
        which = " open" if args.open else ""
        of = f" of run {run_id}" if run_id else ""
        print(f"no{which} deviations{of} in {args.db}")
        return 0
    table = [["DEVIATION", "RUN", "STEP", "STATUS", "CLASS", "TITLE", "OPENED"]]
    for row, when in zip(rows, opened, strict=True):
        table.append(
            [
                row.deviation_id,
                row.run_id[:12],
                row.step or "-",
                row.status,
                row.classification or "-",
                row.title if len(row.title) <= 60 else row.title[:59] + "…",
                when,
            ]
        )
    print_table(table)
    return 0


def _signatures(conn: Conn, record: StoredSiteRecord) -> list[tuple[StoredSiteRecord, Signature]]:
    """The signatures of ``record`` in its own transaction (the records right after it)."""
    found: list[tuple[StoredSiteRecord, Signature]] = []
    seq = record.seq + 1
    while (after := stored_site_record(conn, seq)) is not None:
        if after.wall_time_ns != record.wall_time_ns:
            break
        p = after.payload
        if isinstance(p, Signature) and (p.signed.seq, p.signed.hash) == (record.seq, record.hash):
            found.append((after, p))
        seq += 1
    return found


def _run_record_text(
    journal: Journal, conn: Conn, row: DeviationRow
) -> tuple[list[str], dict[str, Any]] | None:
    """The run's record of a runner deviation in words, and the site signatures of it
    (a supervisor's approval of the restart: it lets the run go on, it closes nothing)."""
    if row.origin != "runner" or row.run_seq is None:
        return None
    for record in journal.records(row.run_id, {RecordKind.DEVIATION}):
        if record.seq == row.run_seq:
            lines = [f"run record #{record.seq}: {describe(record) or record.kind}"]
            for stored in stored_site_records(
                conn, kinds=(SiteKind.SIGNATURE,), mentioning=row.run_id
            ):
                p = stored.payload
                if (
                    isinstance(p, Signature)
                    and p.signed.chain != SITE_CHAIN
                    and (p.signed.run_id, p.signed.seq) == (row.run_id, record.seq)
                ):
                    lines.append(f"    {describe_signature(shown(p, stored.ref))}")
            return lines, record.payload.model_dump(mode="json")
    return None


def show_command(args: argparse.Namespace) -> int:
    with Journal(args.db, create=False) as journal:
        conn = journal.read_connection()
        row = read_deviation(conn, args.deviation_id)
        if row is None:
            raise BadInputError(
                f"no deviation {args.deviation_id}; `cellauto deviations` lists them"
            )
        recorded = _run_record_text(journal, conn, row)
        history = [
            (record, _signatures(conn, record))
            for record in stored_site_records_where(
                conn, site_row_filter("deviations"), (row.deviation_id,)
            )
        ]
    if args.json:
        shown_json = {
            "deviation": row._asdict(),
            "run_record": None if recorded is None else recorded[1],
            "records": [
                {
                    "site_seq": record.seq,
                    "kind": record.kind.value,
                    "text": describe_review(record.payload),
                    "payload": record.payload.model_dump(mode="json"),
                    "signatures": [
                        {"site_seq": s.seq, **p.model_dump(mode="json")} for s, p in signed
                    ],
                }
                for record, signed in history
            ],
        }
        print(orjson.dumps(shown_json, option=orjson.OPT_INDENT_2).decode())
        return 0
    print(
        f"{row.deviation_id}  run {row.run_id}  {row.status}"
        f"  class {row.classification or '-'}  ({row.origin})"
    )
    for line in [] if recorded is None else recorded[0]:
        print(f"  {line}")
    for record, signed in history:
        print(f"  site #{record.seq}  {describe_review(record.payload)}")
        for stored, signature in signed:
            print(f"      {describe_signature(shown(signature, stored.ref))}")
        if not signed:
            print("      NO SIGNATURE in its transaction: run cellauto verify")
    return 0


# -- acts ---------------------------------------------------------------------------------
def _who(store: SiteStore, args: argparse.Namespace, purpose: str) -> Authenticated:
    return sign_in(store, Passwords(args.password_stdin), args.as_user, purpose)


def _done(verb: str, act: DeviationAct, who: str) -> int:
    print(
        f"deviation {act.deviation_id} {verb}, signed by {who}; site records"
        f" {act.record.seq}, {act.signature.seq}"
    )
    return 0


def raise_command(args: argparse.Namespace) -> int:
    with Journal(args.db, create=False) as journal:
        run_id = _run_id(journal, args.run_id)
    with store_of(args) as store:
        who = _who(store, args, f"deviation raise {run_id}")
        act = raise_deviation(
            store,
            who,
            run_id,
            title=args.title,
            description=args.description,
            step=args.step,
            observed_at=args.observed_at,
            hold=args.hold,
            reason=args.reason,
        )
    _done("raised", act, args.as_user)
    if act.hold is not None:
        print(
            f"Hold of run {run_id} requested (request {act.hold.row.request_id}, site record"
            f" {act.hold.row.site_seq}); the run's controller applies it: `cellauto show"
            f" {run_id[:12]}` shows it"
        )
    return 0


def classify_command(args: argparse.Namespace) -> int:
    with store_of(args) as store:
        who = _who(store, args, f"deviation classify {args.deviation_id}")
        act = classify_deviation(
            store,
            who,
            args.deviation_id,
            classification=Classification(args.cls),
            impact_assessment=args.impact,
            other_batches=args.other_batch,
            reason=args.reason,
        )
    return _done(f"classified {args.cls}", act, args.as_user)


def investigate_command(args: argparse.Namespace) -> int:
    with store_of(args) as store:
        who = _who(store, args, f"deviation investigate {args.deviation_id}")
        act = investigate_deviation(
            store,
            who,
            args.deviation_id,
            root_cause=args.root_cause,
            category=args.category,
            product_impact=ProductImpact(args.product_impact),
            impact_detail=args.impact_detail,
            evidence=args.evidence,
            reason=args.reason,
        )
    return _done("investigated", act, args.as_user)


def close_command(args: argparse.Namespace) -> int:
    with store_of(args) as store:
        who = _who(store, args, f"deviation close {args.deviation_id}")
        act = close_deviation(
            store,
            who,
            args.deviation_id,
            conclusion=args.conclusion,
            capa=args.capa,
            no_capa_reason=args.no_capa_reason,
            reason=args.reason,
        )
    return _done("closed", act, args.as_user)


def withdraw_command(args: argparse.Namespace) -> int:
    with store_of(args) as store:
        who = _who(store, args, f"deviation withdraw {args.deviation_id}")
        act = withdraw_deviation(store, who, args.deviation_id, cause=args.cause)
    return _done("withdrawn", act, args.as_user)
