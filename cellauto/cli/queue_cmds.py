"""``cellauto run --queue`` and ``cellauto queue list|cancel``: the run queue of a site
whose controllers share one PostgreSQL journal (:mod:`cellauto.controller.queue`)."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from cellauto.cli._db import add_db_argument
from cellauto.controller import queue
from cellauto.errors import BadInputError
from cellauto.lines import load_line_config
from cellauto.protocols.definition import Protocol
from cellauto.protocols.params import build_params
from cellauto.protocols.runner import _source_sha256
from cellauto.records import backend as db
from cellauto.records.site_store import SiteStore
from cellauto.site.store import this_terminal

__all__ = ["add_parsers", "queue_run"]


def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "queue",
        help="the run queue of the site's controllers",
        description="The runs submitted with `cellauto run --queue`, for the controllers "
        "(`cellauto controller`) of a PostgreSQL journal.",
    )
    queue_sub = p.add_subparsers(dest="queue_command", required=True)
    listing = queue_sub.add_parser("list", help="the queue, in the order it is taken")
    listing.add_argument(
        "--all", action="store_true", help="also runs started, refused or cancelled"
    )
    add_db_argument(listing)
    listing.set_defaults(handler=list_command)
    cancelling = queue_sub.add_parser("cancel", help="cancel a queued run")
    cancelling.add_argument("run_id", metavar="RUN_ID")
    cancelling.add_argument("--reason", required=True, help="why it must not run")
    cancelling.add_argument("--by", default=None, help="who cancels (default: login name)")
    add_db_argument(cancelling)
    cancelling.set_defaults(handler=cancel_command)


def queue_run(args: argparse.Namespace, protocol: Protocol, values: dict[str, Any]) -> int:
    """``cellauto run PROTOCOL --queue``: validate here, queue, print the run id."""
    from cellauto.cli.run_cmd import attend, operator_name

    if not db.Location.parse(args.db).is_postgresql:
        raise BadInputError(
            f"--queue needs a PostgreSQL journal (--db postgresql://...), not {args.db!r}: "
            "the queue is taken by controllers (`cellauto controller`); on SQLite run the "
            "batch without --queue"
        )
    if args.sim:
        raise BadInputError("--queue: the run goes to a controller's line; drop --sim")
    line_name = args.line_name
    if line_name is None and args.line is not None:
        line_name = load_line_config(args.line).name
    rehearsal = True if args.line is None else load_line_config(args.line).is_simulation
    params = build_params(protocol.params, values, rehearsal=rehearsal)
    _, source_sha = _source_sha256(protocol)
    if source_sha is None:
        raise BadInputError(f"protocol {protocol.name}: its source file cannot be read")
    attendance = attend(args, protocol, "run.start", f"submit a run of {protocol.name}")
    try:
        with SiteStore(args.db) as store:
            found = queue.submit(
                store,
                protocol_name=protocol.name,
                protocol_version=protocol.version,
                source_sha256=source_sha,
                parameters=params.model_dump(mode="json"),
                line=line_name,
                priority=args.priority,
                by=args.as_user or operator_name(args.operator),
                terminal=this_terminal(),
                signature=attendance.signature if attendance is not None else None,
                seed=args.seed,
            )
    finally:
        if attendance is not None:
            attendance.close()
    print(f"run {found.run_id}", flush=True)
    seeded = f", seed {args.seed}" if args.seed is not None else ""
    print(
        f"queued as #{found.queue_seq} for line {found.line or '(any)'} "
        f"(priority {found.priority}{seeded})",
        flush=True,
    )
    return 0


def _when(wall_ns: int) -> str:
    return dt.datetime.fromtimestamp(wall_ns / 1e9, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def list_command(args: argparse.Namespace) -> int:
    statuses = () if args.all else ("queued", "taken")
    with SiteStore(args.db) as store, store.reading() as conn:
        rows = queue.queue_rows(conn, statuses=statuses)
    if not rows:
        print("the run queue is empty" if not args.all else "no run was ever queued")
        return 0
    for row in rows:
        who = f" by {row.controller}" if row.controller else ""
        why = f" ({row.reason})" if row.reason else ""
        print(
            f"#{row.queue_seq} {row.run_id} {row.protocol}@{row.version} line "
            f"{row.line or '(any)'} priority {row.priority} {row.status}{who} "
            f"submitted {_when(row.submitted_wall_ns)} UTC{why}"
        )
    return 0


def cancel_command(args: argparse.Namespace) -> int:
    from cellauto.cli.run_cmd import operator_name

    with SiteStore(args.db) as store:
        done = queue.cancel(
            store,
            args.run_id,
            by=operator_name(args.by),
            reason=args.reason,
            terminal=this_terminal(),
        )
    print(f"run {done.run_id} cancelled: {done.reason}")
    return 0


def add_queue_options(p: argparse.ArgumentParser) -> None:
    """``run``'s options for the queue."""
    p.add_argument(
        "--queue",
        action="store_true",
        help="do not run it here: submit it to the run queue of a PostgreSQL journal, "
        "for a controller of the line (`cellauto controller`); prints the run id",
    )
    p.add_argument(
        "--priority", type=int, default=0, help="with --queue: higher runs first (default 0)"
    )
    p.add_argument(
        "--line-name",
        default=None,
        metavar="NAME",
        help="with --queue: the line whose controllers run it (default: --line's name)",
    )
