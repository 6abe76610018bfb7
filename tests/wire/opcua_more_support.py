"""Helpers of the cytometer and cryostorage OPC UA tests (no tests here)."""

from __future__ import annotations

from typing import Any

import anyio
from pydantic import BaseModel

from cellauto.instruments.cryo_storage import CryoStorage, StoragePosition
from cellauto.instruments.flow_cytometer import FlowCytometer
from cellauto.instruments.materials import Sample
from cellauto.sim.cytometer import SimFlowCytometer
from cellauto.sim.material import Container
from cellauto.sim.storage import SimCryoStorage
from tests.wire.test_opcua_support import make_world

BAGS = ("bag 1", "bag 2")


def make_cytometer(seed: int = 7) -> tuple[SimFlowCytometer, Sample]:
    """A cytometer and a 0.5 mL sample of the apheresis bag (1e7 cells) on its line."""
    world = make_world(seed)
    sample = world.draw_sample(world.containers["APH-1"], 0.5, prefix="TEST")
    return SimFlowCytometer(world), sample


def make_storage(seed: int = 7) -> SimCryoStorage:
    """A storage freezer with two frozen bags on its line."""
    world = make_world(seed)
    for name in BAGS:
        world.add_container(
            Container(name, viable_cells=1e8, dead_cells=5e6, volume_ml=20, dmso_pct=7.5)
        )
    return SimCryoStorage(world)


def at(rack: str = "A", box: int = 1, slot: int = 1) -> StoragePosition:
    return StoragePosition(rack=rack, box=box, slot=slot)


async def cytometer_script(cytometer: FlowCytometer, sample: Sample) -> list[BaseModel]:
    """Two panels on one sample (each about 20 min of process time)."""
    return [
        await cytometer.immunophenotype(sample, operator="alice"),
        await cytometer.immunophenotype(sample, "T-cell purity"),
    ]


async def storage_script(storage: CryoStorage) -> list[BaseModel]:
    """Readings, two bags in, two days, one bag out, the inventory after each change."""
    out: list[BaseModel] = [await storage.conditions()]
    out.append(await storage.store("bag 1", at()))
    out.append(await storage.store("bag 2", at("B", 2, 3)))
    out.extend(await storage.inventory())
    await anyio.sleep(2 * 86_400)
    out.append(await storage.conditions())
    out.append(await storage.retrieve("bag 1"))
    out.extend(await storage.inventory())
    stream = storage.conditions_stream(600.0)
    out.append(await anext(stream))
    out.append(await anext(stream))
    await stream.aclose()  # type: ignore[attr-defined]
    return out


async def side_by_side(local: Any, remote: Any, script: Any, *args: Any) -> tuple[Any, Any]:
    """Run ``script`` on both instruments from the same process time, concurrently."""
    results: dict[str, Any] = {}

    async def run(key: str, instrument: Any) -> None:
        results[key] = await script(instrument, *args)

    async with anyio.create_task_group() as group:
        group.start_soon(run, "local", local)
        group.start_soon(run, "remote", remote)
    return results["remote"], results["local"]
