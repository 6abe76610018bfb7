"""``cellauto users``: the site's accounts, roles and passwords.

Every act is one signing: ``--as NAME`` and that person's password (typed, or one line
of stdin with ``--password-stdin``). Exit 0 done; 2 a refusal (journaled first) or bad
input (nothing written).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import orjson

from cellauto.cli._db import add_db_argument
from cellauto.errors import BadInputError
from cellauto.records.backend import Conn
from cellauto.records.site_payloads import SitePolicy
from cellauto.records.site_store import SiteStore
from cellauto.site import accounts, password_changes
from cellauto.site.auth import Authenticated, authenticate
from cellauto.site.history import (
    account_history,
    describe_site_record,
    has_site_tables,
    reading_journal,
)
from cellauto.site.policy import current_policy, load_policy_file, utc_datetime, zone_of
from cellauto.site.projection import read_accounts
from cellauto.site.store import open_site_store, this_terminal

from .prompt import Passwords

STDIN_ORDER = (
    "--password-stdin: one password per line of stdin, in this order: the --as person's "
    "password first (when --as is given), then the new password (when one is set)"
)


def common_options(p: argparse.ArgumentParser, *, acting: bool = True) -> None:
    add_db_argument(p)
    if acting:
        p.add_argument("--password-stdin", action="store_true", help=STDIN_ORDER)


def acting_options(
    p: argparse.ArgumentParser, *, required: bool = True, reason: bool = True
) -> None:
    p.add_argument("--as", dest="as_user", required=required, metavar="USER", help="who acts")
    if reason:
        p.add_argument(
            "--reason",
            default="" if not required else None,
            help="why (journaled); asked at the terminal when not given"
            if required
            else "why (journaled)",
        )


def reason_of(args: argparse.Namespace, *, ask: Callable[[str], str] = input) -> str:
    """The reason for a change (Annex 11 §9: part of its record): ``--reason``, else typed
    at the terminal; with no terminal the change is refused before anything is written."""
    if args.reason:
        return str(args.reason)
    if getattr(args, "password_stdin", False) or not sys.stdin.isatty():
        raise BadInputError(
            "give --reason TEXT: the reason for a change is part of its record "
            "(no terminal to ask it at)"
        )
    reason = ask("reason for the change (journaled): ").strip()
    if not reason:
        raise BadInputError("a change needs a reason; nothing was changed")
    return reason


def add_parsers(sub: Any) -> None:
    users = sub.add_parser("users", help="accounts and roles", description=__doc__)
    verbs = users.add_subparsers(dest="verb", required=True, parser_class=type(users))
    p = verbs.add_parser(
        "add",
        help="add an account (the first: an administrator, without --as)",
        description="Add an account; its initial password must be changed at the first "
        "sign-in. The first account of a journal is its administrator, added without --as "
        "(it also sets the site policy: --policy FILE.json, else the defaults). " + STDIN_ORDER,
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("--role", action="append", required=True, metavar="ROLE", help="repeatable")
    p.add_argument("--full-name", metavar="TEXT", help="the printed name (default NAME)")
    p.add_argument("--policy", type=Path, metavar="FILE", help="site policy JSON (first only)")
    acting_options(p, required=False)
    common_options(p)
    p.set_defaults(handler=add_command)

    p = verbs.add_parser("list", help="the accounts")
    p.add_argument("--all", action="store_true", help="also disabled accounts")
    common_options(p, acting=False)
    p.set_defaults(handler=list_command)

    p = verbs.add_parser("show", help="an account and its history from the site chain")
    p.add_argument("name", metavar="NAME")
    common_options(p, acting=False)
    p.set_defaults(handler=show_command)

    for verb, what in (("lock", "locked"), ("unlock", "active"), ("disable", "disabled")):
        p = verbs.add_parser(verb, help=f"{verb} an account")
        p.add_argument("name", metavar="NAME")
        acting_options(p)
        common_options(p)
        p.set_defaults(handler=status_command, status=what)

    for verb in ("grant", "revoke"):
        p = verbs.add_parser(verb, help=f"{verb} a role")
        p.add_argument("name", metavar="NAME")
        p.add_argument("role", metavar="ROLE")
        acting_options(p)
        common_options(p)
        p.set_defaults(handler=roles_command, grant=verb == "grant")

    p = verbs.add_parser(
        "passwd",
        help="change one's own password (or --reset another's)",
        description="Own change: the current password, then the new one. --reset --as ADMIN: "
        "the administrator's password, then the new one (to be changed at next sign-in).",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("--reset", action="store_true")
    acting_options(p, required=False)
    common_options(p)
    p.set_defaults(handler=passwd_command)


def store_of(args: argparse.Namespace, *, create: bool = False) -> SiteStore:
    return open_site_store(args.db, create=create)


def sign_in(
    store: SiteStore,
    passwords: Passwords,
    name: str,
    purpose: str,
    *,
    password_change: bool = False,
) -> Authenticated:
    secret = passwords.current(f"password for {name}")
    return authenticate(
        store,
        name,
        secret,
        purpose=purpose,
        terminal=this_terminal(),
        password_change=password_change,
    )


# -- users ------------------------------------------------------------------------------
def add_command(args: argparse.Namespace) -> int:
    passwords = Passwords(args.password_stdin)
    full_name = args.full_name or args.name
    if args.as_user is None:
        if args.role != ["administrator"]:
            raise BadInputError(
                "the first account is the administrator (--role administrator, alone); "
                "other accounts are added by an administrator with --as ADMIN"
            )
        policy = load_policy_file(args.policy) if args.policy else SitePolicy()
        accounts.check_account_name(args.name)
        passwords.check_available()
        secret = passwords.new(f"new password for {args.name}")
        with store_of(args, create=True) as store:
            ref = accounts.bootstrap(
                store,
                args.name,
                full_name,
                secret,
                policy=policy,
                terminal=this_terminal(),
                reason=args.reason,
            )
        print(f"added {args.name} (administrator, first account); site record {ref.seq}")
        return 0
    if args.policy is not None:
        raise BadInputError("--policy is for the first account only")
    roles = accounts.check_roles(args.role)
    accounts.check_account_name(args.name)
    with store_of(args) as store:
        who = sign_in(store, passwords, args.as_user, f"users add {args.name}")
        secret = passwords.new(f"initial password for {args.name}")
        ref = accounts.add_account(
            store, who, args.name, full_name, roles, secret, reason=args.reason
        )
    print(
        f"added {args.name} ({', '.join(roles)}); the password must be changed at first "
        f"sign-in: cellauto users passwd {args.name}; site record {ref.seq}"
    )
    return 0


def status_command(args: argparse.Namespace) -> int:
    new: Literal["active", "locked", "disabled"] = args.status
    reason = reason_of(args)
    with store_of(args) as store:
        who = sign_in(
            store, Passwords(args.password_stdin), args.as_user, f"users {new} {args.name}"
        )
        ref = accounts.change_status(store, who, args.name, new, reason=reason)
    print(f"{args.name} is {new}; site record {ref.seq}")
    return 0


def roles_command(args: argparse.Namespace) -> int:
    verb = "grant" if args.grant else "revoke"
    reason = reason_of(args)
    with store_of(args) as store:
        who = sign_in(
            store, Passwords(args.password_stdin), args.as_user, f"users {verb} {args.name}"
        )
        ref = accounts.change_roles(
            store, who, args.name, args.role, grant=args.grant, reason=reason
        )
    print(f"{verb} {args.role} {'to' if args.grant else 'from'} {args.name}; site record {ref.seq}")
    return 0


def passwd_command(args: argparse.Namespace) -> int:
    passwords = Passwords(args.password_stdin)
    if args.reset and args.as_user is None:
        raise BadInputError("--reset needs --as ADMIN (the administrator who resets it)")
    if not args.reset and args.as_user not in (None, args.name):
        raise BadInputError("to set another person's password give --reset --as ADMIN")
    with store_of(args) as store:
        if args.reset:
            who = sign_in(store, passwords, args.as_user, f"users passwd --reset {args.name}")
            secret = passwords.new(f"new password for {args.name}")
            ref = password_changes.reset_password(store, who, args.name, secret, reason=args.reason)
            print(
                f"password of {args.name} reset; it must be changed at next sign-in; "
                f"site record {ref.seq}"
            )
            return 0
        who = sign_in(store, passwords, args.name, "users passwd", password_change=True)
        secret = passwords.new(f"new password for {args.name}")
        ref = password_changes.change_password(store, who, secret)
    print(f"password of {args.name} changed; site record {ref.seq}")
    return 0


def local_time(policy: SitePolicy | None, wall_time_ns: int) -> str:
    moment = utc_datetime(wall_time_ns)
    if policy is not None:
        moment = moment.astimezone(zone_of(policy))
    return moment.strftime("%Y-%m-%d %H:%M %Z")


def print_table(rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def policy_or_none(conn: Conn) -> SitePolicy | None:
    has = conn.execute("SELECT 1 FROM meta WHERE key = 'site_policy'").fetchone()
    return current_policy(conn)[0] if has else None


def list_command(args: argparse.Namespace) -> int:
    with reading_journal(args.db) as conn:
        if not has_site_tables(conn) or policy_or_none(conn) is None:
            print(f"no accounts in {args.db}")
            return 0
        policy = policy_or_none(conn)
        rows = read_accounts(conn)
        last = {
            a.name: conn.execute(
                "SELECT body, wall_time_ns FROM site_records WHERE seq = ?", (a.source_seq,)
            ).fetchone()
            for a in rows
        }
    table = [["NAME", "FULL NAME", "ROLES", "STATUS", "PASSWORD EXPIRES", "LAST CHANGE"]]
    for account in rows:
        if account.status == "disabled" and not args.all:
            continue
        status = account.status + (", must change password" if account.must_change else "")
        expires = (
            "never"
            if account.password_expires_ns is None
            else local_time(policy, account.password_expires_ns - 1)
        )
        body, wall_ns = last[account.name]
        by = _by(body)
        table.append(
            [
                account.name,
                account.full_name,
                ",".join(account.roles),
                status,
                expires,
                f"{by}, {local_time(policy, wall_ns)} (#{account.source_seq})",
            ]
        )
    print_table(table)
    return 0


def _by(body: str) -> str:
    return str(orjson.loads(body)["payload"]["by"])


def show_command(args: argparse.Namespace) -> int:
    with reading_journal(args.db) as conn:
        if not has_site_tables(conn):
            raise BadInputError(f"no account {args.name!r} in {args.db}")
        policy = policy_or_none(conn)
        history = account_history(conn, args.name)
        exists = conn.execute("SELECT 1 FROM accounts WHERE name = ?", (args.name,)).fetchone()
    if exists is None and not history:
        raise BadInputError(f"no account {args.name!r} in {args.db}; `cellauto users list`")
    for record in history:
        by = record.payload.by
        reason = f"  reason: {record.payload.reason}" if record.payload.reason else ""
        print(
            f"#{record.seq:<6} {local_time(policy, record.wall_time_ns)}  by {by:<10} "
            f"{describe_site_record(record.payload)}{reason}"
        )
    return 0
