"""``cellauto run``: execute a protocol (on the simulated line with --sim)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import anyio

from cellauto.cli._db import add_db_argument
from cellauto.cli.console import RunConsole, abort_on_signal
from cellauto.cli.progress import Progress, format_duration
from cellauto.cli.prompt import Passwords
from cellauto.cli.queue_cmds import add_queue_options, queue_run
from cellauto.cli.run_people import Attendance, check_attended, sign_in_to_run
from cellauto.cli.run_site import run_site
from cellauto.clock import Clock, scaled_loop_factory, virtual_loop_factory
from cellauto.errors import BadInputError
from cellauto.instruments.line import Line
from cellauto.lines import LineConfig, load_line_config
from cellauto.lines.wire import GapRecorder, open_line, serve_simulated
from cellauto.protocols import Runner, load_protocol
from cellauto.protocols.containers import batch_identities
from cellauto.protocols.execution import Execution, RunOutcome
from cellauto.protocols.inbox import PeopleInbox
from cellauto.protocols.outcome import fenced_error
from cellauto.protocols.params import build_params, load_params_file, parse_param_assignments
from cellauto.protocols.runner import validate_request
from cellauto.protocols.tasks import Answerer
from cellauto.records import Journal
from cellauto.records.models import utc_from_epoch_s
from cellauto.sim import SimLine, sim_line_for_protocol, starting_materials
from cellauto.sim.line import protocol_population
from cellauto.sim.simulate import DEFAULT_SIM_START
from cellauto.sim.world import SimWorld


def _parse_start(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time (e.g. 2026-03-02T08:00:00Z)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("run", help="run a protocol", description="Run a protocol file.")
    p.add_argument("protocol_file", metavar="PROTOCOL_FILE")
    p.add_argument("--sim", action="store_true", help="on the simulated line, in virtual time")
    p.add_argument(
        "--line",
        type=Path,
        metavar="LINE.toml",
        help="on the line this file describes: adapters and endpoints per equipment",
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set one parameter (repeatable); VALUE is JSON or a plain string",
    )
    p.add_argument("--params", type=Path, metavar="FILE.json", help="parameters from JSON")
    p.add_argument(
        "--lot",
        action="append",
        default=[],
        metavar="MATERIAL=LOT",
        help="use this lot for a material of the protocol's bill of materials (repeatable; "
        "by default the first to expire among the usable lots)",
    )
    add_db_argument(p)
    add_queue_options(p)
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of the simulation; a seeded simulated run is reproducible: the same "
        "inputs give the same run id and a byte-identical record in a fresh journal (with "
        "--queue: kept in the submission, for a controller whose line has line_per_run)",
    )
    p.add_argument(
        "--patient",
        choices=("drawn", "typical"),
        default=None,
        help="whose cells a simulated line receives: drawn from the population of the "
        "protocol's starting material by the seed (default; the line file's [simulation] "
        "patient), or its typical patient",
    )
    p.add_argument(
        "--start",
        type=_parse_start,
        default=None,
        metavar="ISO8601",
        help=f"process time at which a simulated run starts (default: now; with --seed "
        f"{DEFAULT_SIM_START.isoformat()} so that the record is reproducible)",
    )
    add_people_options(p, "starts")
    p.add_argument(
        "--operators",
        choices=["people", "simulated"],
        default=None,
        help="who answers the run's operator tasks: people signing with their accounts "
        "(at this console or with `cellauto answer`), or simulated operators (only on a "
        "simulated line; the default there unless --as is given)",
    )
    p.add_argument(
        "--on-hold",
        choices=["prompt", "restart", "stop", "abort"],
        default=None,
        help="what to do when the run is Held: ask (default on a terminal), or "
        "restart / stop / abort by itself (default without a terminal: stop); "
        "restart is refused on a plant's line",
    )
    p.set_defaults(handler=run_command)


def add_people_options(p: argparse.ArgumentParser, verb: str) -> None:
    """--as, --password-stdin and --operator of ``run`` and ``resume``."""
    p.add_argument(
        "--as",
        dest="as_user",
        metavar="USER",
        help=f"the person who {verb} the run: signs in (password) and answers at this "
        "console; required on a plant's line",
    )
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="read --as's password, and the console's answers and passwords, from stdin "
        "(one per line) instead of the terminal",
    )
    p.add_argument(
        "--operator",
        default=None,
        help=f"a label for who {verb} a simulated run (default: login name); refused on a "
        "plant's line, where --as names the person",
    )


def operator_name(given: str | None) -> str:
    """Who acts: as given, else the login name."""
    if given:
        return given
    try:
        return getpass.getuser()
    except Exception:
        return "operator"


def on_hold_mode(given: str | None) -> str:
    """What answers a Held run: as given, else the console on a terminal, else stop."""
    return given or ("prompt" if sys.stdin.isatty() else "stop")


def line_origin(line_config: LineConfig | None) -> datetime | None:
    """Now in the process time of a line with an epoch (shared by all its processes)."""
    if line_config is None:
        return None
    now_s = line_config.simulation.process_time_s(time.time())
    return None if now_s is None else utc_from_epoch_s(now_s)


def print_outcome(outcome: RunOutcome, wall: str) -> None:
    """The closing line of ``run`` and ``resume``."""
    try:
        print(
            f"run {outcome.run_id} ended {outcome.state.value} ({outcome.exit_status}): "
            f"{outcome.reason}; {outcome.records} records in {wall} wall"
        )
    except BrokenPipeError:  # the reader went away (e.g. `| head`); the run is recorded
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def run_command(args: argparse.Namespace) -> int:
    protocol = load_protocol(args.protocol_file)
    values: dict[str, Any] = {}
    if args.params:
        values.update(load_params_file(args.params))
    values.update(parse_param_assignments(args.param, protocol.params))
    lots = parse_lot_assignments(args.lot)
    if args.queue:  # validated here, run by a controller of the line
        return queue_run(args, protocol, values)
    line_config = load_line_config(args.line) if args.line else None
    if args.sim and line_config is not None:
        raise BadInputError("give either --sim or --line LINE.toml, not both")
    if not args.sim and line_config is None:
        raise BadInputError(
            "no line to run on: pass --sim (the simulated line, in process) or "
            "--line LINE.toml (instruments over OPC UA, VISA, PyLabRobot)"
        )
    rehearsal = args.sim or (line_config is not None and line_config.is_simulation)
    operators: Literal["people", "simulated"] = args.operators or (
        "people" if args.as_user or not rehearsal else "simulated"
    )
    params = build_params(protocol.params, values, rehearsal=rehearsal)
    check_attended(
        line_config,
        as_user=args.as_user,
        operator=args.operator,
        on_hold=args.on_hold,
        command="start",
        operators=args.operators,
    )
    mode = on_hold_mode(args.on_hold)
    operator = args.as_user or operator_name(args.operator)
    simulated = args.sim or (line_config is not None and line_config.simulation.serve)
    seed = args.seed
    if seed is None and line_config is not None:
        seed = line_config.simulation.seed
    reproducible = simulated and seed is not None
    patient = args.patient
    if patient is None:
        patient = line_config.simulation.patient if line_config is not None else "drawn"
    origin = args.start or (DEFAULT_SIM_START if reproducible else None)
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None
    if simulated:
        loop_factory = virtual_loop_factory
    else:
        assert line_config is not None
        speed = line_config.simulation.speed
        loop_factory = scaled_loop_factory(speed) if speed != 1.0 else None

    gaps = GapRecorder()
    worlds: list[SimWorld] = []  # the simulated line's world, for simulated operators

    async def open_run_line(stack: AsyncExitStack, clock: Clock) -> Line:
        """The line, validated against the request before the journal is opened."""
        sim: SimLine | None
        if line_config is None:
            sim = sim_line_for_protocol(protocol, params, clock=clock, seed=seed, patient=patient)
            assert sim.line is not None
            worlds.append(sim.world)
            return sim.line
        needed = protocol.equipment()
        sim = None
        endpoints: dict[str, str] = {}
        if line_config.simulation.serve:
            batch = batch_identities(protocol, params)
            sim = SimLine(
                clock=clock,
                seed=seed,
                name=line_config.name,
                patient=patient,
                population=protocol_population(protocol),
            )
            for container in starting_materials(
                protocol.inputs, params, batch, patient=sim.patient
            ):
                sim.world.add_container(container)
            sim.world.identities.update(batch)
            worlds.append(sim.world)
            endpoints = await serve_simulated(line_config, sim, needed, stack)
            for name, endpoint in endpoints.items():
                print(f"serving {name} at {endpoint}", flush=True)
        line = await open_line(
            line_config, needed, stack, sim=sim, endpoints=endpoints, gaps=gaps, clock=clock
        )
        if sim is not None:
            line.simulation = sim.simulation_info()
        validate_request(protocol, line, params)
        return line

    attendance = attend(args, protocol, "run.start", f"start a run of {protocol.name}")
    console = RunConsole(
        mode,
        operator,
        attendance=attendance,
        people=operators == "people",
        interactive=args.password_stdin or sys.stdin.isatty(),
    )

    async def main() -> RunOutcome:
        shared = None if simulated or origin else line_origin(line_config)
        clock = Clock(origin or shared)
        async with AsyncExitStack() as stack:
            line = await open_run_line(stack, clock)
            site = run_site(protocol, params, line, clock, simulated, args.db)
            stack.callback(site.close)
            with Journal(args.db) as journal, PeopleInbox(journal) as inbox:
                people = operators == "people"
                runner = Runner(journal, clock_origin=origin, reproducible=reproducible)
                progress = Progress(protocol, params)
                runner.observers.extend([progress, console])
                execution = runner.prepare(
                    protocol,
                    line,
                    params,
                    seed=seed,
                    operator=operator,
                    clock=None if simulated else clock,  # the adapters' clock: one process time
                    operators=operators,
                    answerers=[inbox, console] if people else _simulated(worlds),
                    authority=inbox.authority() if people else None,
                    operator_account=attendance.signature if attendance else None,
                    site=site,
                    lots=lots,
                )
                gaps.journal_to(execution)
                print(f"run {execution.run_id}", flush=True)
                return await execute_attended(
                    execution, console, operator, attendance, inbox if people else None
                )

    try:
        return run_and_report(main, loop_factory)
    finally:
        if attendance is not None:
            attendance.close()


def parse_lot_assignments(given: list[str]) -> dict[str, str]:
    """``--lot MATERIAL=LOT`` options as {material: lot id}; BadInputError if malformed."""
    lots: dict[str, str] = {}
    for text in given:
        material, sep, lot = text.rpartition("=")
        if not sep or not material.strip() or not lot.strip():
            raise BadInputError(f"--lot {text!r}: give MATERIAL=LOT, e.g. --lot 'IL-2=IL2/L123'")
        if material.strip() in lots:
            raise BadInputError(f"--lot: material {material.strip()!r} is assigned twice")
        lots[material.strip()] = lot.strip()
    return lots


def _simulated(worlds: list[SimWorld]) -> list[Answerer]:
    """Simulated operators who see the simulated line's world (they scan its labels);
    none given when the line is served elsewhere (the runner's default then)."""
    if not worlds:
        return []
    from cellauto.sim.operators import SimulatedOperators

    return [SimulatedOperators(world=worlds[0])]


def attend(
    args: argparse.Namespace, protocol: Any, act: Literal["run.start", "run.restart"], what: str
) -> Attendance | None:
    """With --as: sign the person in, open their session and sign ``act`` (refusals exit 2)."""
    if args.as_user is None:
        return None
    attendance = sign_in_to_run(
        args.db,
        args.as_user,
        Passwords(args.password_stdin),
        protocol,
        act=act,
        statement=f"I, {args.as_user}, {what} (version {protocol.version}) as its operator",
    )
    print(f"signed in: {attendance.printed_name} ({attendance.account}); session open", flush=True)
    return attendance


async def execute_attended(
    execution: Execution,
    holds: RunConsole,
    operator: str,
    attendance: Attendance | None = None,
    inbox: PeopleInbox | None = None,
) -> RunOutcome:
    """Execute to the end with the console answering and Ctrl-C/SIGTERM aborting (and
    ``inbox`` taking up answers and commands from other terminals)."""
    async with anyio.create_task_group() as tg:
        if inbox is not None:
            inbox.register(execution)
            tg.start_soon(inbox.run)
        holds.bind(execution, tg)
        tg.start_soon(abort_on_signal, execution)
        signature = attendance.signature if attendance is not None else None
        outcome = await execution.execute(by=operator, signature=signature)
        execution.close()
        tg.cancel_scope.cancel()
    return outcome


def run_and_report(
    main: Callable[[], Awaitable[RunOutcome]],
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None,
) -> int:
    """Run ``main`` on the given loop, print how the run ended, return the exit code."""
    wall = time.perf_counter()
    options = {"loop_factory": loop_factory} if loop_factory else {}
    try:
        outcome = anyio.run(main, backend_options=options)
    except BaseExceptionGroup as group:  # the run was taken over: say so, plainly
        fenced = fenced_error(group)
        if fenced is None:
            raise
        raise fenced from None
    print_outcome(outcome, format_duration(time.perf_counter() - wall))
    return 0 if outcome.exit_status == "complete" else 1
