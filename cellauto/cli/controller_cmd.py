"""``cellauto controller``: run the queued batches of a line (a long-lived service)."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path
from typing import Any

import anyio

from cellauto.cli._db import add_db_argument
from cellauto.clock import scaled_loop_factory, virtual_loop_factory
from cellauto.lines import load_line_config

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "controller",
        help="a controller service: runs the queued batches of its line",
        description="Run the batches queued for LINE (`cellauto run --queue`) on a "
        "PostgreSQL journal, with the other controllers of the site: each takes queued runs "
        "within its capacity, and takes over the runs of a controller that dies. Stops on "
        "SIGTERM (its runs are left to the others).",
    )
    add_db_argument(p)
    p.add_argument("--line", type=Path, required=True, metavar="LINE.toml", help="its line")
    p.add_argument(
        "--name",
        default=None,
        help="the controller's name, unique on the site (default: the host name)",
    )
    p.add_argument("--capacity", type=int, default=200, help="runs at once (default 200)")
    p.add_argument(
        "--protocols",
        type=Path,
        default=Path("protocols"),
        metavar="DIR",
        help="where the protocol files the queue names are (default ./protocols)",
    )
    p.add_argument(
        "--grace-s",
        type=float,
        default=2.0,
        help="seconds after a peer's presence ends before its runs are taken over (default 2)",
    )
    p.add_argument(
        "--stale-s",
        type=float,
        default=30.0,
        help="seconds without a heartbeat after which a run's claim counts as gone (default 30)",
    )
    p.add_argument(
        "--self-fence-s",
        type=float,
        default=10.0,
        help="seconds without a successful commit to the journal (a cut link) after which "
        "the controller stops driving its runs and exits with status 3, for its supervisor "
        "to restart it; less than 11 + --grace-s and than --stale-s (default 10)",
    )
    p.add_argument(
        "--sweep-s",
        type=float,
        default=30.0,
        help="seconds between looks at the queue and at hung peers without a "
        "notification (default 30)",
    )
    p.set_defaults(handler=controller_command)


def controller_command(args: argparse.Namespace) -> int:
    from cellauto.controller.service import ControllerService, ControllerSettings

    config = load_line_config(args.line)
    service = ControllerService(
        ControllerSettings(
            db=args.db.url if args.db.url is not None else str(args.db.path),
            line=config,
            name=args.name or socket.gethostname(),
            capacity=args.capacity,
            protocols=args.protocols,
            grace_s=args.grace_s,
            stale_s=args.stale_s,
            self_fence_s=args.self_fence_s,
            sweep_s=args.sweep_s,
            announce=lambda text: print(text, flush=True),
        )
    )
    if config.simulation.line_per_run:
        # each run on a simulated line of its own, in virtual time, as simulate_batches
        # runs its batches (the service's own timers stay real: clock.move_on_after_real)
        from cellauto.sim.batches import fewer_collections

        with fewer_collections():
            options = {"loop_factory": virtual_loop_factory}
            return int(anyio.run(service.run, backend_options=options))
    speed = config.simulation.speed
    options = {"loop_factory": scaled_loop_factory(speed)} if speed != 1.0 else {}
    return int(anyio.run(service.run, backend_options=options))
