"""``cellauto hold|restart|stop|abort RUN_ID --as USER --reason TEXT``: a signed command
to a running batch from another terminal.

The request is signed (the password is asked, or one line of stdin with
``--password-stdin``) and recorded; the run's controller applies it or refuses it
(journaled in the run). A Restart of a run held by a deviation needs a supervisor's
approval: a supervisor's request carries it (a second signature, meaning approved).
Exit 0 applied; 2 refused (journaled: permission, the run's state, no approval) or bad
input; 1 no controller took it up within ``--wait-s`` (the request is settled expired
and never applied late).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from cellauto.records.backend import Location
from cellauto.records.task_rows import RequestRow, read_request
from cellauto.site.history import reading_journal
from cellauto.site.run_requests import COMMANDS, expire_request, request_command

from .people_cmds import common_options, sign_in, store_of
from .prompt import Passwords

_GRACE_S = 1.0


def add_parsers(sub: Any) -> None:
    for command in COMMANDS:
        p = sub.add_parser(command, help=f"{command} a running batch", description=__doc__)
        p.add_argument("run_id", metavar="RUN_ID")
        p.add_argument("--as", dest="as_user", required=True, metavar="USER", help="who asks")
        p.add_argument("--reason", required=True, help="why (journaled)")
        p.add_argument("--wait-s", type=float, default=30.0, help="wait for the controller (s)")
        common_options(p)
        p.set_defaults(handler=request_cmd, command_name=command)


def _settled(db: Location, request_id: str, wait_s: float) -> RequestRow | None:
    deadline = time.monotonic() + wait_s
    while True:
        with reading_journal(db) as conn:
            row = read_request(conn, request_id)
        if row is not None and row.status != "pending":
            return row
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.1)


def request_cmd(args: argparse.Namespace) -> int:
    db = args.db
    command = args.command_name
    with store_of(args) as store:
        who = sign_in(
            store, Passwords(args.password_stdin), args.as_user, f"{command} {args.run_id}"
        )
        given = request_command(
            store, who, args.run_id, command, reason=args.reason, expires_s=args.wait_s
        )
    approval = " with approval of the deviation" if given.approval is not None else ""
    print(f"{command} of run {args.run_id} requested by {args.as_user}{approval}")
    # a controller applies a request only before it expires; the grace lets its settle
    # commit land before this face settles the row expired
    row = _settled(db, given.row.request_id, args.wait_s + _GRACE_S)
    if row is None:
        with store_of(args) as store:
            row = expire_request(store, given.row.request_id)
    where = f" (run record #{row.run_seq})" if row.run_seq is not None else ""
    if row.status == "applied":
        print(f"{command} applied{where}")
        return 0
    if row.status == "expired":
        print(f"not applied: {row.outcome} ({args.wait_s:g} s); the request has expired")
        return 1
    print(f"refused{where}: {row.outcome}")
    return 2
