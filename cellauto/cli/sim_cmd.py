"""``cellauto sim serve``: serve the simulated line to standard clients on loopback."""

from __future__ import annotations

import argparse
import json
import signal
import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

from cellauto.cli._db import add_db_argument, journal_exists
from cellauto.cli.fidelity_cmd import add_sim_parser as add_fidelity_parser
from cellauto.clock import Clock, real_seconds, scaled_loop_factory
from cellauto.errors import BadInputError
from cellauto.lines import LineConfig, load_line_config
from cellauto.lines.pools import expand_pools, nest_endpoints
from cellauto.lines.wire import INTERFACES, serve_simulated
from cellauto.records.models import utc_from_epoch_s
from cellauto.sim import SimLine
from cellauto.sim.action_log import ActionLog
from cellauto.sim.faults import QcFault
from cellauto.sim.material import Container
from cellauto.sim.starting_material import material_container

DEFAULT_LINE = Path(__file__).resolve().parents[2] / "lines" / "sim-serve.toml"
#: Adapters whose simulated instruments ``sim serve`` serves (``pylabrobot``: with a
#: ``tcp://`` endpoint, PyLabRobot's operations as JSON lines, sim/plr_server.py).
_SERVED = ("visa", "opcua", "tcp", "pylabrobot")


def add_parser(sub: Any) -> None:
    sim = sub.add_parser("sim", help="the simulated line", description="The simulated line.")
    sim_sub = sim.add_subparsers(dest="sim_command", required=True)
    p = sim_sub.add_parser(
        "serve",
        help="serve simulated instruments on loopback",
        description="Serve each wire-protocol instrument of LINE.toml (SCPI, OPC UA, TCP, "
        "PyLabRobot) on 127.0.0.1 for standard clients; prints the endpoints; runs until Ctrl-C.",
    )
    p.add_argument("line", nargs="?", type=Path, metavar="LINE.toml")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument(
        "--speed",
        type=float,
        default=None,
        help="process seconds per real second (default: the line file's, else 1)",
    )
    p.add_argument("--for-s", type=float, default=None, help="stop after this many real seconds")
    p.add_argument(
        "--actions",
        type=Path,
        default=None,
        metavar="FILE.jsonl",
        help="append each physical action the served instruments carry out to this file "
        "(one JSON line each; a crash drill compares it with the controller's journal)",
    )
    p.set_defaults(handler=serve_command)

    p = sim_sub.add_parser(
        "qc",
        help="a simulated QC laboratory's LIMS export for a batch",
        description="Write the release-test results a simulated QC laboratory finds for "
        "RUN_ID, as its LIMS exports them (import with `cellauto qc import RUN_ID FILE "
        "--schema NAME` after `cellauto qc schema define NAME --builtin sim`, or "
        "`--builtin sim-json` for --format json). Values derive from the run's records "
        "with deterministic noise.",
    )
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--out", type=Path, required=True, metavar="FILE")
    p.add_argument("--format", choices=("csv", "json"), default="csv")
    p.add_argument("--seed", type=int, default=None, help="default: the run's seed")
    p.add_argument(
        "--fault",
        type=_qc_fault,
        action="append",
        default=[],
        metavar="TEST:EFFECT[=VALUE]",
        help="fail, missing, wrong_din, unauthorised or borderline (repeatable)",
    )
    add_db_argument(p)
    p.set_defaults(handler=qc_command)
    add_fidelity_parser(sim_sub)


_QC_EFFECTS = ("fail", "missing", "wrong_din", "unauthorised", "borderline")


def _qc_fault(text: str) -> QcFault:
    test, colon, effect = text.rpartition(":")
    effect, eq, value = effect.partition("=")
    if not colon or not test.strip() or effect not in _QC_EFFECTS:
        raise argparse.ArgumentTypeError(
            f"--fault {text!r} is not TEST:EFFECT[=VALUE], EFFECT one of {', '.join(_QC_EFFECTS)}"
        )
    forced: float | str | None = None
    if eq:
        try:
            forced = float(value)
        except ValueError:
            forced = value
    return QcFault.model_validate({"test": test.strip(), "effect": effect, "value": forced})


def qc_command(args: argparse.Namespace) -> int:
    from cellauto.records import Journal
    from cellauto.records.payloads import RunStarted
    from cellauto.sim.qc import simulated_results, write_lims_export
    from cellauto.site.history import reading_journal

    from .qc_cmds import run_id_of

    path = args.db
    if not journal_exists(path):
        raise BadInputError(f"no journal {path}; give --db PATH or --db postgresql://…")
    with reading_journal(path) as conn:
        run_id = run_id_of(conn, args.run_id)
    with Journal(path, create=False) as journal:
        records = journal.records(run_id)
    started = records[0].payload
    own = started.seed if isinstance(started, RunStarted) else None
    seed = args.seed if args.seed is not None else (own or 0)
    today = datetime.now(UTC).date()
    try:
        rows = simulated_results(records, seed=seed, faults=args.fault, today=today)
    except ValueError as exc:
        raise BadInputError(str(exc)) from None
    write_lims_export(rows, args.out, format=args.format)
    print(f"{len(rows)} results of run {records[0].run_id} written to {args.out} ({args.format})")
    return 0


def _needed(config: LineConfig) -> dict[str, Any]:
    needed = {}
    for name, equipment in config.equipment.items():
        if equipment.adapter not in _SERVED:
            continue
        if equipment.adapter == "pylabrobot" and not (equipment.endpoint or "").startswith("tcp:"):
            continue  # PyLabRobot on its own simulation backend: nothing to serve
        if equipment.interface not in INTERFACES:
            raise BadInputError(
                f"equipment {name!r}: interface {equipment.interface!r} is needed to serve it; "
                f"one of: {', '.join(sorted(INTERFACES))}"
            )
        needed[name] = INTERFACES[equipment.interface]
    if not needed:
        raise BadInputError(f"line {config.name!r} has no visa, opcua or tcp equipment to serve")
    return needed


def _materials(config: LineConfig) -> list[Container]:
    return [
        material_container(m.container_id, m.material, m.label) for m in config.simulation.materials
    ]


def _log_served_dispenses(servers: dict[str, object], actions: ActionLog) -> None:
    """A liquid handler served over PyLabRobot's wire logs its dispenses (the aliquots)."""
    from cellauto.sim.plr_actions import log_dispenses
    from cellauto.sim.plr_server import PlrServer

    for name, server in servers.items():
        if isinstance(server, PlrServer):
            log_dispenses(server, actions, name)


def serve_command(args: argparse.Namespace) -> int:
    config = load_line_config(args.line or DEFAULT_LINE)
    needed = _needed(config)
    speed = args.speed if args.speed is not None else config.simulation.speed
    if not speed > 0:
        raise BadInputError(f"--speed must be positive, got {speed}")
    seed = args.seed if args.seed is not None else config.simulation.seed

    epoch = config.simulation.epoch or datetime.now(UTC).replace(microsecond=0)

    async def main() -> None:
        # the line's process time, as its controllers read it: epoch + (now - epoch) x speed
        now_s = epoch.timestamp() + (time.time() - epoch.timestamp()) * speed
        clock = Clock(utc_from_epoch_s(now_s))
        sim = SimLine(clock=clock, seed=seed, materials=_materials(config), name=config.name)
        async with AsyncExitStack() as stack:
            actions: ActionLog | None = None
            if args.actions is not None:  # watched before any server holds an instrument
                sim.line_for(expand_pools(config, needed)[1])  # a pool's units by POOL@UNIT
                actions = stack.enter_context(ActionLog(args.actions, clock).watch(sim.equipment))
            servers: dict[str, object] = {}
            endpoints = await serve_simulated(config, sim, needed, stack, servers)
            if actions is not None:
                _log_served_dispenses(servers, actions)
            announced = {
                "line": config.name,
                "speed": speed,
                "epoch": epoch.isoformat(),
                "endpoints": nest_endpoints(endpoints, config),  # a pool's: {unit: endpoint}
            }
            print(json.dumps(announced), flush=True)  # at once: a client waits for this line
            print(f"serving {len(endpoints)} instruments; Ctrl-C to stop", flush=True)
            with anyio.move_on_after(real_seconds(args.for_s) if args.for_s else float("inf")):
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for _signal in signals:
                        break

    anyio.run(main, backend_options={"loop_factory": scaled_loop_factory(speed)})
    return 0
