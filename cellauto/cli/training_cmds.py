"""``cellauto training``: who is trained on which protocol or SOP, until when.

Recording or revoking training is one signing (``--as NAME`` and password) by a
supervisor or QA, never for oneself. Exit 0 done; 2 a refusal (journaled first) or bad
input (nothing written).
"""

from __future__ import annotations

import argparse
import time
from datetime import date
from typing import Any, Literal

from cellauto.errors import BadInputError
from cellauto.site.history import has_site_tables, reading_journal
from cellauto.site.policy import site_date
from cellauto.site.training import parse_subject, record_training, revoke_training, subject_text

from .people_cmds import (
    acting_options,
    common_options,
    policy_or_none,
    print_table,
    reason_of,
    sign_in,
    store_of,
)
from .prompt import Passwords


def add_parsers(sub: Any) -> None:
    training = sub.add_parser("training", help="training records", description=__doc__)
    verbs = training.add_subparsers(dest="verb", required=True, parser_class=type(training))
    p = verbs.add_parser("add", help="record a person's training")
    p.add_argument("name", metavar="NAME")
    p.add_argument(
        "--for",
        dest="subject",
        required=True,
        metavar="SUBJECT[@VERSION]",
        help="a protocol name or sop:ID, at a version (or every version)",
    )
    p.add_argument("--trained-on", type=_date, metavar="DATE", help="default today")
    p.add_argument("--expires", metavar="DATE|none", help="default: the policy's validity")
    p.add_argument("--evidence", default="", metavar="TEXT")
    acting_options(p, reason=False)
    p.add_argument("--reason", default="")
    common_options(p)
    p.set_defaults(handler=training_add_command)

    p = verbs.add_parser("list", help="training records")
    p.add_argument("name", nargs="?", metavar="NAME")
    common_options(p, acting=False)
    p.set_defaults(handler=training_list_command)

    p = verbs.add_parser("revoke", help="revoke a training record")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--for", dest="subject", required=True, metavar="SUBJECT[@VERSION]")
    acting_options(p)
    common_options(p)
    p.set_defaults(handler=training_revoke_command)


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from exc


def _expires(text: str | None) -> date | Literal["default"] | None:
    if text is None:
        return "default"
    if text.lower() == "none":
        return None
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise BadInputError(f"--expires {text!r} is not a date (YYYY-MM-DD) nor 'none'") from exc


def training_add_command(args: argparse.Namespace) -> int:
    subject = parse_subject(args.subject)
    until = _expires(args.expires)
    with store_of(args) as store:
        who = sign_in(
            store, Passwords(args.password_stdin), args.as_user, f"training add {args.name}"
        )
        ref = record_training(
            store,
            who,
            args.name,
            subject,
            trained_on=args.trained_on,
            expires_on=until,
            evidence=args.evidence,
            reason=args.reason,
        )
    print(f"training of {args.name} for {subject_text(subject)} recorded; site record {ref.seq}")
    return 0


def training_revoke_command(args: argparse.Namespace) -> int:
    subject = parse_subject(args.subject)
    reason = reason_of(args)
    with store_of(args) as store:
        who = sign_in(
            store, Passwords(args.password_stdin), args.as_user, f"training revoke {args.name}"
        )
        ref = revoke_training(store, who, args.name, subject, reason=reason)
    print(f"training of {args.name} for {subject_text(subject)} revoked; site record {ref.seq}")
    return 0


def training_list_command(args: argparse.Namespace) -> int:
    with reading_journal(args.db) as conn:
        policy = policy_or_none(conn) if has_site_tables(conn) else None
        if policy is None:
            print(f"no training records in {args.db}")
            return 0
        where, params = ("WHERE trainee = ?", (args.name,)) if args.name else ("", ())
        rows = conn.execute(
            "SELECT trainee, subject_kind, subject, version, trained_on, expires_on, revoked,"
            f" source_seq FROM training {where} ORDER BY trainee, subject_kind, subject, version",
            params,
        ).fetchall()
    today = site_date(policy, time.time_ns()).isoformat()
    table = [["TRAINEE", "SUBJECT", "TRAINED ON", "EXPIRES", "STATUS", "RECORD"]]
    for trainee, kind, name, version, trained_on, expires_on, revoked, seq in rows:
        subject = ("sop:" if kind == "sop" else "") + name + (f"@{version}" if version else "")
        status = (
            "revoked"
            if revoked
            else "expired"
            if expires_on and expires_on < today
            else "not yet"
            if trained_on > today
            else "valid"
        )
        table.append([trainee, subject, trained_on, expires_on or "never", status, f"#{seq}"])
    if len(table) == 1:
        print("no training records" + (f" for {args.name}" if args.name else ""))
        return 0
    print_table(table)
    return 0
