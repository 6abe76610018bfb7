"""``cellauto alarms``: the runs' alarms, and acknowledging one with a comment.

``list`` reads only: every unacknowledged alarm (``--all``: acknowledged ones too, with
who acknowledged it, when and why; ``--run``: one run's). ``ack RUN_ID SEQ --comment TEXT
--as USER`` acknowledges the alarm at record SEQ of the run (operators, supervisors, QA):
the person signs in (password, typed or one line of stdin with ``--password-stdin``) and
the acknowledgement is journaled with their session and terminal; it is not an
electronic signature. Exit 0 done; 2 refused (journaled) or bad input; 1 otherwise.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

import orjson

from cellauto.records import Journal
from cellauto.site.alarms import AlarmRow, acknowledge_alarm, open_alarms
from cellauto.site.history import reading_journal

from .people_cmds import acting_options, common_options, sign_in, store_of
from .prompt import Passwords


def add_parsers(sub: Any) -> None:
    alarms = sub.add_parser("alarms", help="the runs' alarms; acknowledge one", description=__doc__)
    verbs = alarms.add_subparsers(dest="verb", required=True, parser_class=type(alarms))
    p = verbs.add_parser("list", help="unacknowledged alarms (--all: every alarm)")
    p.add_argument("--run", metavar="RUN_ID", help="one run (a unique prefix will do)")
    p.add_argument("--all", action="store_true", help="acknowledged alarms too")
    p.add_argument("--json", action="store_true", help="one JSON array")
    common_options(p, acting=False)
    p.set_defaults(handler=list_command)

    p = verbs.add_parser("ack", help="acknowledge an alarm with a comment (journaled)")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("seq", type=int, metavar="SEQ", help="the alarm's record number")
    p.add_argument("--comment", required=True, help="what was seen or done (3-500 characters)")
    acting_options(p, reason=False)
    common_options(p)
    p.set_defaults(handler=ack_command)


def _when(wall_ns: int | None) -> str:
    if wall_ns is None:
        return "-"
    return f"{datetime.fromtimestamp(wall_ns / 1e9, tz=UTC):%Y-%m-%d %H:%M:%S}"


def _row(alarm: AlarmRow) -> dict[str, Any]:
    return {
        "run_id": alarm.run_id,
        "seq": alarm.seq,
        "severity": alarm.severity,
        "source": alarm.source,
        "message": alarm.message,
        "raised_utc": _when(alarm.wall_time_ns),
        "acknowledged_by": alarm.acked_by,
        "acknowledged_utc": None if alarm.acked_wall_ns is None else _when(alarm.acked_wall_ns),
        "comment": alarm.comment,
    }


def list_command(args: argparse.Namespace) -> int:
    run_id = None
    if args.run:
        with Journal(args.db, create=False) as journal:
            run_id = journal.resolve_run_id(args.run)
    with reading_journal(args.db) as conn:
        found = open_alarms(conn, run_id=run_id, include_acknowledged=args.all)
    if args.json:
        print(orjson.dumps([_row(a) for a in found], option=orjson.OPT_INDENT_2).decode())
        return 0
    if not found:
        print("no alarms" if args.all else "no unacknowledged alarms")
        return 0
    for alarm in found:
        state = (
            f"acknowledged by {alarm.acked_by} {_when(alarm.acked_wall_ns)}: {alarm.comment}"
            if alarm.acked_by
            else "UNACKNOWLEDGED"
        )
        print(
            f"{alarm.run_id[:12]} #{alarm.seq:<6} {_when(alarm.wall_time_ns)}  {alarm.severity:<8}"
            f" {alarm.source}: {alarm.message}  [{state}]"
        )
    return 0


def ack_command(args: argparse.Namespace) -> int:
    with Journal(args.db, create=False) as journal:
        run_id = journal.resolve_run_id(args.run_id)
    with store_of(args) as store:
        who = sign_in(
            store, Passwords(args.password_stdin), args.as_user, f"alarm ack {run_id} {args.seq}"
        )
        ref = acknowledge_alarm(store, who, run_id, args.seq, comment=args.comment)
    print(
        f"alarm #{args.seq} of run {run_id} acknowledged by {args.as_user}; site record {ref.seq}"
    )
    return 0
