"""Serve a simulated cell counter and controlled-rate freezer over SCPI, in real time.

``python -m cellauto.sim.scpi [--counter-port 5025] [--freezer-port 5026] [--seed 1]``

The world holds two product bags, ``BAG-1`` and ``BAG-2``, and one sample drawn from
``BAG-1`` (``P-S0001``). Once listening, one JSON line with the VISA resource names is
written to standard output; the servers run until standard input closes or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

import anyio

from cellauto.clock import Clock
from cellauto.sim.counter import SimCellCounter
from cellauto.sim.freezer import SimControlledRateFreezer
from cellauto.sim.material import Container
from cellauto.sim.scpi.counter import CounterScpi
from cellauto.sim.scpi.freezer import FreezerScpi
from cellauto.sim.scpi.server import serve_scpi
from cellauto.sim.world import SimWorld

log = logging.getLogger("cellauto.sim.scpi")


async def serve(host: str, counter_port: int, freezer_port: int, seed: int | None) -> None:
    world = SimWorld(Clock(), seed=seed)
    for name in ("BAG-1", "BAG-2"):
        world.add_container(
            Container(name, viable_cells=2e9, dead_cells=1e8, volume_ml=100.0, dmso_pct=7.5)
        )
    world.draw_sample(world.containers["BAG-1"], 0.5, prefix="P")
    counter = CounterScpi(SimCellCounter(world))
    freezer = FreezerScpi(SimControlledRateFreezer(world))
    async with (
        serve_scpi(counter, host, counter_port) as counter_server,
        serve_scpi(freezer, host, freezer_port) as freezer_server,
    ):
        ready = {"counter": counter_server.resource_name, "freezer": freezer_server.resource_name}
        sys.stdout.write(json.dumps(ready) + "\n")
        sys.stdout.flush()
        await anyio.to_thread.run_sync(sys.stdin.read, abandon_on_cancel=True)
    log.info("standard input closed: servers stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cellauto.sim.scpi", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--counter-port", type=int, default=5025, help="0: any free port")
    parser.add_argument("--freezer-port", type=int, default=5026, help="0: any free port")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        anyio.run(serve, args.host, args.counter_port, args.freezer_port, args.seed)
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
