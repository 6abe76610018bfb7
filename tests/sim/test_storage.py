"""SimCryoStorage: inventory, refusals, LN2 evaporation and autofill, level-drop alarm."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from itertools import pairwise

import anyio
import pytest

from cellauto.clock import Clock
from cellauto.errors import InstrumentError, OutOfRangeError
from cellauto.instruments.cryo_storage import StoragePosition
from cellauto.sim.faults import Disconnect, LN2LevelDrop, PowerLoss
from cellauto.sim.material import Container
from cellauto.sim.storage import SimCryoStorage, StorageModel, equilibrium_temperature_c
from cellauto.sim.world import SimWorld

pytestmark = pytest.mark.anyio

ORIGIN = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
HOUR = 3600.0
DAY = 24 * HOUR


def make(seed: int = 1, **model: object) -> tuple[SimWorld, SimCryoStorage]:
    world = SimWorld(Clock(ORIGIN), seed=seed)
    for name in ("bag 1", "bag 2"):
        world.add_container(
            Container(name, viable_cells=1e8, dead_cells=5e6, volume_ml=20, dmso_pct=7.5)
        )
    return world, SimCryoStorage(world, model=StorageModel(**model))  # type: ignore[arg-type]


def at(rack: str = "A", box: int = 1, slot: int = 1) -> StoragePosition:
    return StoragePosition(rack=rack, box=box, slot=slot)


async def test_store_retrieve_and_inventory() -> None:
    world, storage = make()
    conditions = await storage.conditions()
    assert conditions.temperature_c < -185 and conditions.alarm is None and conditions.autofill_on
    first = await storage.store("bag 1", at(slot=1))
    second = await storage.store("bag 2", at("B", 2, 3))
    assert (
        first.position == at() and second.stored_at_process_time_s > first.stored_at_process_time_s
    )
    assert [item.container_id for item in await storage.inventory()] == ["bag 1", "bag 2"]
    retrieved = await storage.retrieve("bag 1")
    assert retrieved == first
    assert await storage.inventory() == [second]
    assert world.containers["bag 1"].history[-2:] == [
        "stored in CryoStorage LN2-0001 at rack A box 1 slot 1",
        "retrieved from CryoStorage LN2-0001 at rack A box 1 slot 1",
    ]
    with pytest.raises(InstrumentError, match="'bag 1' is not stored here; stored: bag 2"):
        await storage.retrieve("bag 1")


async def test_occupied_unknown_and_impossible_positions_are_refused() -> None:
    _, storage = make()
    await storage.store("bag 1", at("C", 4, 7))
    with pytest.raises(InstrumentError, match="rack C box 4 slot 7 is occupied by 'bag 1'"):
        await storage.store("bag 2", at("C", 4, 7))
    with pytest.raises(InstrumentError, match="'bag 1' is already stored at rack C box 4 slot 7"):
        await storage.store("bag 1", at("C", 4, 8))
    with pytest.raises(InstrumentError, match="no container 'bag 9' on the line"):
        await storage.store("bag 9", at())
    with pytest.raises(InstrumentError, match="no rack 'Z'; racks: A, B, C, D, E, F"):
        await storage.store("bag 2", at("Z"))
    with pytest.raises(OutOfRangeError, match=r"position\.slot 26 is above the limit 25"):
        await storage.store("bag 2", at(slot=26))
    assert [item.container_id for item in await storage.inventory()] == ["bag 1"]


async def test_evaporation_lowers_the_level_over_days_and_autofill_restores_it() -> None:
    _, storage = make()
    levels = []
    for _ in range(40):
        levels.append((await storage.conditions()).ln2_level_pct)
        await anyio.sleep(DAY)
    assert levels[0] == pytest.approx(85.0, abs=1.0)
    assert levels[10] == pytest.approx(85.0 - 15.0, abs=1.0)  # 1.5 % a day
    lowest = min(levels)
    assert 38.0 < lowest < 41.0  # autofill starts below 40 %
    refill = levels.index(lowest) + 1
    assert levels[refill] == pytest.approx(90.0 - 1.5, abs=1.5)  # filled back to 90 %
    assert all(b < a for a, b in pairwise(levels[:refill]))


async def test_a_level_drop_without_autofill_alarms_and_warms_above_minus_150() -> None:
    world, storage = make()
    await storage.store("bag 1", at())
    storage.inject(LN2LevelDrop(at_h=world.elapsed_h() + 2.0, drop_pct=75.0))
    await anyio.sleep(1 * HOUR)
    assert (await storage.conditions()).alarm is None
    await anyio.sleep(1.5 * HOUR)
    conditions = await storage.conditions()
    assert conditions.ln2_level_pct == pytest.approx(10.0, abs=0.5)
    assert not conditions.autofill_on
    assert conditions.alarm is not None
    assert re.fullmatch(r"LN2 level \d+\.\d % below 20 %", conditions.alarm)
    assert conditions.temperature_c < -150  # the vapour phase takes hours to warm
    await anyio.sleep(3 * HOUR)
    conditions = await storage.conditions()
    assert conditions.temperature_c > -150
    assert conditions.alarm is not None and "above -150 °C" in conditions.alarm
    with pytest.raises(InstrumentError, match=r"above the limit -150 °C"):
        await storage.store("bag 2", at(slot=2))
    await anyio.sleep(2 * DAY)
    assert (await storage.conditions()).temperature_c > -140
    assert (await storage.retrieve("bag 1")).container_id == "bag 1"


async def test_a_level_drop_with_autofill_is_refilled() -> None:
    _, storage = make()
    storage.inject(LN2LevelDrop(drop_pct=60.0, disable_autofill=False))
    assert (await storage.conditions()).ln2_level_pct == pytest.approx(25.0, abs=0.5)
    await anyio.sleep(4 * HOUR)
    conditions = await storage.conditions()
    assert conditions.ln2_level_pct == pytest.approx(90.0, abs=1.0)
    assert conditions.autofill_on and conditions.alarm is None


async def test_level_temperature_curve_is_monotonic() -> None:
    temperatures = [equilibrium_temperature_c(level) for level in range(0, 101)]
    assert all(b <= a for a, b in pairwise(temperatures))
    assert temperatures[0] == 20.0 and temperatures[90] < -190
    assert temperatures[20] < -150 < temperatures[10]


async def test_conditions_stream_is_endless_and_in_time_order() -> None:
    _, storage = make()
    times = []
    async for conditions in storage.conditions_stream(HOUR):
        times.append(conditions.process_time_s)
        if len(times) == 5:
            break
    assert [b - a for a, b in pairwise(times)] == [HOUR] * 4


async def test_same_seed_same_conditions_and_faults() -> None:
    readings = []
    for seed in (3, 3):
        _, storage = make(seed)
        readings.append([await storage.conditions() for _ in range(3)])
    assert readings[0] == readings[1]
    _, storage = make()
    storage.inject(Disconnect(duration_h=1.0))
    with pytest.raises(InstrumentError, match="disconnected"):
        await storage.conditions()
    with pytest.raises(InstrumentError, match="disconnected"):
        await storage.store("bag 1", at())
    await anyio.sleep(1.1 * HOUR)
    assert (await storage.conditions()).alarm is None
    with pytest.raises(InstrumentError, match="cannot suffer power_loss"):
        storage.inject(PowerLoss())


async def test_the_model_conditions_change_nothing_a_reading_would_give() -> None:
    """What a served freezer shows before its first reading draws no noise and does not
    integrate the model: the readings taken afterwards are those of an unwatched freezer."""
    (_, watched), (_, unwatched) = make(seed=5), make(seed=5)
    shown = watched.model_conditions()
    assert shown.temperature_c == equilibrium_temperature_c(85.0) and shown.alarm is None
    assert shown.process_time_s == ORIGIN.timestamp()
    for _ in range(7):
        await anyio.sleep(0.7 * HOUR)
        again = watched.model_conditions()
        assert again.process_time_s == ORIGIN.timestamp()  # as last looked at: at the start
    readings = [await s.conditions() for s in (watched, unwatched)]
    assert readings[0] == readings[1]
    assert watched.model_conditions().process_time_s == readings[0].process_time_s
    assert watched.model_conditions().ln2_level_pct == readings[0].ln2_level_pct
