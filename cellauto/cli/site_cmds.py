"""``cellauto site policy show | set``: the site policy (passwords, lockout, sessions,
training validity, time zone, argon2 cost)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from cellauto.site.accounts import set_site_policy
from cellauto.site.history import has_site_tables, reading_journal
from cellauto.site.policy import NoSitePolicyError, current_policy, load_policy_file

from .people_cmds import acting_options, common_options, reason_of, sign_in, store_of
from .prompt import Passwords


def add_parsers(sub: Any) -> None:
    site = sub.add_parser("site", help="the site policy", description=__doc__)
    verbs = site.add_subparsers(dest="verb", required=True, parser_class=type(site))
    policy = verbs.add_parser("policy", help="show or set the site policy")
    actions = policy.add_subparsers(dest="action", required=True, parser_class=type(site))
    p = actions.add_parser("show", help="the policy in force, as JSON")
    common_options(p, acting=False)
    p.set_defaults(handler=show_command)
    p = actions.add_parser(
        "set",
        help="replace the policy (an administrator)",
        description="Replace the site policy with FILE (JSON; missing fields take their "
        "defaults). Passwords hashed at other argon2 parameters are re-hashed at their "
        "owner's next sign-in.",
    )
    p.add_argument("file", type=Path, metavar="FILE")
    acting_options(p)
    common_options(p)
    p.set_defaults(handler=set_command)


def show_command(args: argparse.Namespace) -> int:
    with reading_journal(args.db) as conn:
        if not has_site_tables(conn):
            raise NoSitePolicyError(f"no site policy in {args.db}: it has no accounts yet")
        policy, ref = current_policy(conn)
    print(json.dumps(policy.model_dump(mode="json"), indent=2))
    print(f"(site record {ref.seq})")
    return 0


def set_command(args: argparse.Namespace) -> int:
    policy = load_policy_file(args.file)
    reason = reason_of(args)
    with store_of(args) as store:
        who = sign_in(store, Passwords(args.password_stdin), args.as_user, "site policy set")
        ref = set_site_policy(store, who, policy, reason=reason)
    print(f"site policy set; site record {ref.seq}")
    return 0
