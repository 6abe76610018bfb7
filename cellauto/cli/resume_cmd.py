"""``cellauto resume``: continue a run its controller left unended (after a crash)."""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from cellauto.cli._db import add_db_argument, journal_exists
from cellauto.cli.console import RunConsole
from cellauto.cli.run_cmd import (
    add_people_options,
    attend,
    execute_attended,
    line_origin,
    on_hold_mode,
    operator_name,
    run_and_report,
)
from cellauto.cli.run_people import check_attended
from cellauto.cli.run_site import resume_site
from cellauto.clock import Clock, scaled_loop_factory
from cellauto.errors import BadInputError
from cellauto.instruments.line import Line
from cellauto.lines import LineConfig, load_line_config
from cellauto.lines.wire import GapRecorder, open_line
from cellauto.protocols import Runner, load_protocol
from cellauto.protocols.execution import RunOutcome
from cellauto.protocols.inbox import PeopleInbox
from cellauto.records import Journal, RecordKind
from cellauto.records import payloads as rec
from cellauto.records.models import utc_from_epoch_s


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "resume",
        help="resume a run after a controller crash",
        description="Resume RUN_ID, which its controller left unended, on the line it ran "
        "on: steps completed are not run again; the step in progress follows its resume "
        "policy (rerun, reconcile, or hold for an operator).",
    )
    p.add_argument("protocol_file", metavar="PROTOCOL_FILE", help="the file the run started with")
    p.add_argument("run_id", metavar="RUN_ID", help="the run id, or a unique prefix of it")
    p.add_argument(
        "--line", type=Path, required=True, metavar="LINE.toml", help="the line the run is on"
    )
    add_db_argument(p)
    add_people_options(p, "resumes")
    p.add_argument(
        "--on-hold",
        choices=["prompt", "restart", "stop", "abort"],
        default=None,
        help="what to do when the run is Held (as for `cellauto run`)",
    )
    p.set_defaults(handler=resume_command)


def resume_command(args: argparse.Namespace) -> int:
    protocol = load_protocol(args.protocol_file)
    line_config = load_line_config(args.line)
    if line_config.simulation.serve:
        raise BadInputError(
            f"line {line_config.name!r} is simulated inside the controller's own process, and "
            "that simulation ended with it: there is nothing to resume on. Serve the simulated "
            "line apart (`cellauto sim serve LINE.toml`) to rehearse a crash over the wire, or "
            "use simulate(..., crashes=[...]) in a test"
        )
    if not journal_exists(args.db):
        raise BadInputError(f"no journal {str(args.db)!r}: give the --db the run was recorded in")
    with Journal(args.db, create=False) as journal:  # a run in use: say so first
        journal.check_owner(journal.resolve_run_id(args.run_id))
    check_attended(
        line_config,
        as_user=args.as_user,
        operator=args.operator,
        on_hold=args.on_hold,
        command="resume",
    )
    mode = on_hold_mode(args.on_hold)
    operator = args.as_user or operator_name(args.operator)
    speed = line_config.simulation.speed
    loop_factory = scaled_loop_factory(speed) if speed != 1.0 else None
    gaps = GapRecorder()
    attendance = attend(
        args, protocol, "run.restart", f"resume run {args.run_id} of {protocol.name}"
    )

    async def main() -> RunOutcome:
        with Journal(args.db, create=False) as journal, PeopleInbox(journal) as inbox:
            run_id = journal.resolve_run_id(args.run_id)
            journal.check_owner(run_id)  # at once: before connecting to the line
            # the line's process time: the adapters date readings and gaps by it too
            clock = _line_clock(journal, run_id, line_config)
            async with AsyncExitStack() as stack:
                needed = protocol.equipment()
                line = await open_line(line_config, needed, stack, gaps=gaps, clock=clock)
                site = resume_site(journal, run_id, protocol, line, clock, args.db)
                stack.callback(site.close)
                runner = Runner(journal)
                people = _answered_by_people(journal, run_id, line)
                console = RunConsole(
                    mode,
                    operator,
                    attendance=attendance,
                    people=people,
                    interactive=args.password_stdin or sys.stdin.isatty(),
                )
                runner.observers.append(console)
                execution = runner.resume(
                    protocol,
                    line,
                    run_id,
                    clock=clock,
                    answerers=[inbox, console] if people else [],
                    authority=inbox.authority() if people else None,
                    site=site,
                )
                gaps.journal_to(execution)
                print(f"resuming run {run_id}", flush=True)
                return await execute_attended(
                    execution, console, operator, attendance, inbox if people else None
                )

    try:
        return run_and_report(main, loop_factory)
    finally:
        if attendance is not None:
            attendance.close()


def _answered_by_people(journal: Journal, run_id: str, line: Line) -> bool:
    """A run answered by people: its open tasks get their rows again, other terminals
    answer them (on a real line always: older records read as simulated)."""
    started = journal.records(run_id, {RecordKind.RUN_STARTED})[0].payload
    return not line.rehearsal or (
        isinstance(started, rec.RunStarted) and started.operators == "people"
    )


def _line_clock(journal: Journal, run_id: str, line_config: LineConfig) -> Clock:
    """Real time on a real line; on a line running ``speed`` times faster than real time,
    the run's last record's process time plus the real time since, times ``speed`` (the
    served line ran on while the controller was down)."""
    speed = line_config.simulation.speed
    if speed == 1.0:
        return Clock()
    shared = line_origin(line_config)
    if shared is not None:  # the line's own process time, as every process of it reads it
        return Clock(shared)
    last = journal.records(run_id)[-1]
    behind_s = max(0.0, (time.time_ns() - last.wall_time_ns) / 1e9) * speed
    return Clock(utc_from_epoch_s(last.process_time_s + behind_s))
