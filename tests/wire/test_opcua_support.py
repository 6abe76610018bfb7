"""Helpers of the OPC UA tests (no tests here): worlds, scripts, comparisons."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from asyncua import Client, Node, ua
from pydantic import BaseModel

from cellauto.clock import Clock, VirtualTimeEventLoop
from cellauto.instruments.bioreactor import Bioreactor, Reagent, Setpoints
from cellauto.instruments.cell_processor import CellProcessor, ProgramInputs
from cellauto.sim.bioreactor import SimBioreactor
from cellauto.sim.material import Container
from cellauto.sim.processor import SimCellProcessor
from cellauto.sim.world import SimWorld

ORIGIN = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@asynccontextmanager
async def plain_client(url: str) -> AsyncIterator[Client]:
    """A plain asyncua client on the virtual loop (server on the same loop).

    Connecting runs in real time (socket and handshake timeouts); afterwards loopback
    replies are readable at once, so virtual time never jumps over a request. The
    keep-alive probe runs hourly instead of every (virtual) second.
    """
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualTimeEventLoop)
    client = Client(url, watchdog_intervall=3600.0)
    with loop.real_time():
        await client.connect()
    try:
        yield client
    finally:
        await client.disconnect()


async def variables_below(node: Node) -> list[Node]:
    """Every variable below ``node`` (hierarchical references, depth first)."""
    found: list[Node] = []
    for child in await node.get_children():
        if await child.read_node_class() == ua.NodeClass.Variable:
            found.append(child)
        found.extend(await variables_below(child))
    return found


def leftover_tasks() -> list[str]:
    """Tasks of asyncua or cellauto still alive (none may be, once all is closed)."""
    names = []
    for task in asyncio.all_tasks():
        code = getattr(task.get_coro(), "cr_code", None)
        module = code.co_filename if code is not None else ""
        if task is not asyncio.current_task() and ("asyncua" in module or "cellauto" in module):
            names.append(getattr(task.get_coro(), "__qualname__", repr(task)))
    return names


def make_world(seed: int = 7) -> SimWorld:
    """A world with an apheresis bag of 2e9 viable cells (60 % T cells)."""
    world = SimWorld(Clock(ORIGIN), seed=seed)
    world.add_container(
        Container("APH-1", viable_cells=2e9, dead_cells=1e8, volume_ml=100.0, t_cell_fraction=0.6)
    )
    return world


def make_bioreactor(seed: int = 7) -> SimBioreactor:
    return SimBioreactor(make_world(seed))


def make_processor(seed: int = 7) -> SimCellProcessor:
    return SimCellProcessor(make_world(seed))


async def bioreactor_script(bioreactor: Bioreactor, sleep: Any) -> list[BaseModel]:
    """Five days of a CAR-T expansion: setpoints, seeding, activation, vector, feeds."""
    out: list[BaseModel] = [
        await bioreactor.set_setpoints(
            Setpoints(temperature_c=37.0, rocking_rate_rpm=10.0, perfusion_rate_ml_per_day=200.0)
        ),
        await bioreactor.seed("APH-1", volume_ml=50.0, medium_ml=400.0),
        await bioreactor.add_reagent(Reagent(name="TransAct", kind="activation", volume_ml=10.0)),
    ]
    await sleep(86_400)
    out.append(
        await bioreactor.add_reagent(Reagent(name="CAR LV", kind="vector", volume_ml=5.0, moi=5))
    )
    out.append(await bioreactor.feed(100.0))
    out.append(await bioreactor.read_process_values())
    out.append(await bioreactor.draw_sample(1.0))
    await sleep(3 * 86_400)
    out.append(await bioreactor.read_process_values())
    out.append(await bioreactor.harvest("HARVEST-1"))
    return out


async def processor_script(processor: CellProcessor) -> list[BaseModel | None]:
    """A CD4/CD8 enrichment run to its result, then a sample of the product."""
    inputs = ProgramInputs(
        source_container_id="APH-1",
        output_container_id="ENR-1",
        parameters={"output_volume_ml": 80.0},
    )
    result = await processor.run_program("CD4CD8_ENRICHMENT", inputs, "batch-7/enrich")
    return [
        result,
        await processor.program_status(result.device_program_run_id),
        await processor.draw_sample("ENR-1", 1.0),
        await processor.active_program(),
    ]


def _same(got: Any, want: Any, where: str) -> None:
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), where
        for key in want:
            _same(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for index, (g, w) in enumerate(zip(got, want, strict=True)):
            _same(g, w, f"{where}[{index}]")
    elif isinstance(want, float) and where.endswith("process_time_s"):
        # virtual time follows real time while a request is in flight: milliseconds apart
        assert got == want or abs(got - want) < 1.0, (where, got, want)
    elif isinstance(want, float):
        # Sampled up to a second of process time apart (above), a culture's values move by
        # up to ~2e-5 of themselves (lactate ~1 mM/day at 0.6 mM): 1e-4 covers that, and
        # nothing coarser. Bit-identical wire runs need time that never follows real time
        # while a request is in flight (issue 9, "timeouts that mean real time").
        assert math.isclose(got, want, rel_tol=1e-4, abs_tol=1e-12), (where, got, want)
    else:
        assert got == want, (where, got, want)


def assert_same_results(got: list[Any], want: list[Any]) -> None:
    """Equal results; floats to 1e-4 relative, process times to within a second."""
    assert len(got) == len(want)
    for index, (g, w) in enumerate(zip(got, want, strict=True)):
        assert type(g) is type(w), (index, g, w)
        if w is None:
            continue
        _same(g.model_dump(), w.model_dump(), f"[{index}] {type(w).__name__}")
