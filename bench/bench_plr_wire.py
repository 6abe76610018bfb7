"""The liquid handler over TCP: wall time per aliquot, in process and over the wire.

One world with a 70 mL bag; ``N`` aliquots of 100 µL into new tubes, each with a fresh
tip (pick up, aspirate, dispense, drop: four serialized operations plus ``deck_state``),
on :class:`~cellauto.sim.liquid_handler.SimLiquidHandler` in process and on
:class:`~cellauto.instruments.plr.TcpPlrLiquidHandler` reaching
:mod:`cellauto.sim.plr_server` on loopback. Virtual time (the cycle's 20 s cost
nothing); the figure is the wall time of PyLabRobot plus, over the wire, the round trips.

Run ``python bench/bench_plr_wire.py [--quick]``; :func:`run` returns rows for
``bench/run.py``.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

import anyio

from cellauto.clock import Clock, virtual_loop_factory
from cellauto.instruments.plr import TcpPlrLiquidHandler, TcpSerializingBackend
from cellauto.sim.liquid_handler import SimLiquidHandler
from cellauto.sim.material import Container
from cellauto.sim.plr_server import serve_plr
from cellauto.sim.world import SimWorld

ORIGIN = datetime(2026, 3, 3, 8, 0, tzinfo=UTC)


def _world() -> SimWorld:
    world = SimWorld(Clock(ORIGIN), seed=1)
    world.add_container(Container("bag", viable_cells=9e8, dead_cells=1e8, volume_ml=70.0))
    return world


async def _in_process(count: int) -> float:
    handler = SimLiquidHandler(_world(), tip_racks=count // 96 + 1)
    start = time.perf_counter()
    await handler.aliquot("bag", [f"tube {n}" for n in range(count)][:20], 100)
    for n in range(20, count, 20):
        await handler.aliquot("bag", [f"tube {m}" for m in range(n, min(n + 20, count))], 100)
    return time.perf_counter() - start


async def _over_tcp(count: int) -> float:
    handler = SimLiquidHandler(_world(), tip_racks=count // 96 + 1)
    async with serve_plr(handler) as server:
        adapter = TcpPlrLiquidHandler(
            TcpSerializingBackend("127.0.0.1", server.port), tip_racks=count // 96 + 1
        )
        await adapter.setup()
        start = time.perf_counter()
        for n in range(0, count, 20):
            await adapter.aliquot("bag", [f"tube {m}" for m in range(n, min(n + 20, count))], 100)
        wall = time.perf_counter() - start
        await adapter.stop()
    return wall


def run(quick: bool = False) -> list[dict[str, object]]:
    count = 20 if quick else 100  # 24-tube racks: the deck holds up to 100 here
    rows = []
    for label, bench in (("in process", _in_process), ("over TCP", _over_tcp)):
        wall = anyio.run(bench, count, backend_options={"loop_factory": virtual_loop_factory})
        rows.append(
            {
                "case": f"liquid handler {label}: {count} aliquots of 100 uL",
                "value": f"{1000 * wall / count:.1f} ms/aliquot",
                "target": "",
                "detail": f"{wall:.2f} s wall",
                "ok": None,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="20 aliquots")
    for row in run(quick=parser.parse_args().quick):
        print(f"{row['case']:<56} {row['value']:>18}  {row['detail']}")


if __name__ == "__main__":
    main()
