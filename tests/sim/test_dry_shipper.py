"""SimDryShipper: holding temperature, warming after the hold time, lid open, faults, logger."""

from __future__ import annotations

import gc
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import anyio
import pytest

from cellauto.clock import Clock
from cellauto.errors import InstrumentError
from cellauto.instruments.dry_shipper import LoggerReading
from cellauto.sim.dry_shipper import ShipperModel, SimDryShipper
from cellauto.sim.faults import LN2LevelDrop, SensorDrift, ShipperLidOpen, ShipperWarming
from cellauto.sim.world import SimWorld

pytestmark = pytest.mark.anyio

ORIGIN = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
HOUR = 3600.0


def make(seed: int = 1, **model: object) -> tuple[SimWorld, SimDryShipper]:
    world = SimWorld(Clock(ORIGIN), seed=seed)
    return world, SimDryShipper(world, model=ShipperModel(**model))  # type: ignore[arg-type]


async def test_a_charged_shipper_holds_about_minus_190_with_a_reading_every_5_min() -> None:
    _, shipper = make()
    assert shipper.identity.logger_serial == "LOG-DS-0001" == shipper.logger_serial
    await anyio.sleep(48 * HOUR)
    readings = await shipper.logger_readings(ORIGIN - timedelta(seconds=1))
    assert len(readings) == 48 * 12 + 1  # at 0, 5, 10 min ... 48 h
    assert readings[0].time == ORIGIN and readings[-1].time == ORIGIN + timedelta(hours=48)
    assert all(b.time - a.time == timedelta(minutes=5) for a, b in pairwise(readings))
    temperatures = [r.temperature_c for r in readings]
    assert min(temperatures) > -191.5 and max(temperatures) < -188.0
    assert sum(temperatures[-12:]) / 12 > sum(temperatures[:12]) / 12  # drifts up a little
    status = await shipper.status()
    assert not status.lid_open and status.alarm is None
    assert status.hold_time_remaining_h == pytest.approx(192.0)
    assert status.ln2_charge_pct == pytest.approx(80.0)


async def test_readings_since_a_time_are_those_after_it() -> None:
    _, shipper = make()
    await anyio.sleep(2 * HOUR)
    since = ORIGIN + timedelta(hours=1)
    readings = await shipper.logger_readings(since)
    assert [r.time for r in readings][:2] == [since + timedelta(minutes=5 * k) for k in (1, 2)]
    assert len(readings) == 12
    assert await shipper.logger_readings(ORIGIN + timedelta(hours=3)) == []
    with pytest.raises(InstrumentError, match="timezone-aware"):
        await shipper.logger_readings(datetime(2026, 1, 5, 10, 0))


def _readings_alive() -> int:
    gc.collect()
    return sum(isinstance(o, LoggerReading) for o in gc.get_objects())


async def test_the_log_is_kept_as_numbers_and_readings_are_made_when_asked() -> None:
    """A batch's shipper logs ~2,700 readings from the line's start: kept as LoggerReading
    models they were 1.5 MB a batch, the most of a batch's memory (bench_batches.py)."""
    _, shipper = make()
    before = _readings_alive()
    await anyio.sleep(48 * HOUR)
    await shipper.status()  # the logger catches up: 577 readings taken
    assert _readings_alive() == before  # none kept as models
    page = await shipper.logger_readings(ORIGIN + timedelta(hours=47), most=3)
    hour_47 = ORIGIN + timedelta(hours=47)
    assert [r.time for r in page] == [hour_47 + timedelta(minutes=5 * k) for k in (1, 2, 3)]
    every = await shipper.logger_readings(ORIGIN - timedelta(seconds=1))
    assert len(every) == 577 and every[-12:-9] == page
    del page, every
    assert _readings_alive() == before


async def test_it_warms_once_the_charge_is_spent() -> None:
    _, shipper = make(hold_time_h=24.0)
    await anyio.sleep(23 * HOUR)
    assert (await shipper.status()).temperature_c < -185
    await anyio.sleep(13 * HOUR)  # 12 h past the hold time at 4 °C/h
    status = await shipper.status()
    assert status.hold_time_remaining_h == 0 and status.ln2_charge_pct == 0
    assert status.temperature_c == pytest.approx(-189.5 + 48.0, abs=1.5)
    expected = f"temperature {status.temperature_c:.1f} °C above -150 °C; LN2 charge spent"
    assert status.alarm == expected
    late = await shipper.logger_readings(ORIGIN + timedelta(hours=24))
    assert all(b.temperature_c > a.temperature_c - 1.5 for a, b in pairwise(late))
    assert late[-1].temperature_c > -150 > late[0].temperature_c


async def test_a_half_charge_lasts_half_the_hold_time() -> None:
    _, shipper = make(initial_charge_pct=50.0)
    status = await shipper.status()
    assert status.hold_time_remaining_h == pytest.approx(120.0)
    assert status.ln2_charge_pct == pytest.approx(50.0)


async def test_an_open_lid_warms_the_well_for_minutes_then_it_cools_back() -> None:
    _, shipper = make()
    shipper.inject(ShipperLidOpen(at_h=1.0, duration_min=15))
    await anyio.sleep(1.1 * HOUR)
    assert (await shipper.status()).lid_open
    await anyio.sleep(2 * HOUR)
    assert not (await shipper.status()).lid_open
    readings = await shipper.logger_readings(ORIGIN)
    by_minute = {round((r.time - ORIGIN).total_seconds() / 60): r.temperature_c for r in readings}
    assert by_minute[55] < -188
    assert by_minute[75] == pytest.approx(-190 + 30, abs=1.5)  # 15 min at 2 °C/min
    assert by_minute[75] == max(by_minute.values())
    assert by_minute[180] < -188  # cooled back by the charge


async def test_loading_opens_the_lid_briefly_and_tracks_the_contents() -> None:
    world, shipper = make()
    assert await shipper.load("final product 1") == ["final product 1"]
    assert await shipper.load("final product 2") == ["final product 1", "final product 2"]
    assert world.clock.now() == ORIGIN + timedelta(minutes=2)  # a minute each, lid open
    with pytest.raises(InstrumentError, match="'final product 1' is already in the shipper"):
        await shipper.load("final product 1")
    with pytest.raises(
        InstrumentError, match="'bag 9' is not in the shipper; it holds: final product 1, final"
    ):
        await shipper.unload("bag 9")
    assert await shipper.unload("final product 1") == ["final product 2"]
    assert await shipper.contents() == ["final product 2"]
    await anyio.sleep(HOUR)
    readings = await shipper.logger_readings(ORIGIN)
    assert max(r.temperature_c for r in readings) < -182  # 3 x a minute open: a small bump


async def test_shipper_warming_fault_rises_above_the_limit_then_recovers() -> None:
    _, shipper = make()
    shipper.inject(ShipperWarming(at_h=2.0, rate_c_per_h=30.0, duration_h=2.0))
    await anyio.sleep(8 * HOUR)
    readings = await shipper.logger_readings(ORIGIN)
    above = [r for r in readings if r.temperature_c > -150]
    first_above = above[0].time - ORIGIN  # +40 °C after 80 min of warming
    assert timedelta(hours=3, minutes=15) <= first_above <= timedelta(hours=3, minutes=25)
    assert max(r.temperature_c for r in readings) == pytest.approx(-190 + 60, abs=1.5)
    assert above[-1].time == ORIGIN + timedelta(hours=4, minutes=5)  # decays from hour 4
    assert readings[-1].temperature_c < -188


async def test_warming_without_an_end_keeps_warming_and_to_ambient_at_most() -> None:
    _, shipper = make()
    shipper.inject(ShipperWarming(rate_c_per_h=50.0))
    await anyio.sleep(10 * HOUR)
    assert (await shipper.status()).temperature_c == 20.0


async def test_same_seed_same_readings_and_a_drifting_logger() -> None:
    async def readings(seed: int, *faults: object) -> list[float]:
        _, shipper = make(seed)
        for fault in faults:
            shipper.inject(fault)  # type: ignore[arg-type]
        await anyio.sleep(3 * HOUR)
        return [r.temperature_c for r in await shipper.logger_readings(ORIGIN)]

    first = await readings(4)
    assert first == await readings(4) and first != await readings(5)
    drifted = await readings(4, SensorDrift(field="temperature_c", rate_per_h=10.0, at_h=1.0))
    assert drifted[:12] == first[:12]  # readings after 09:00 up to 10:00, when it starts
    assert drifted[-1] == pytest.approx(first[-1] + 20.0, abs=0.01)


async def test_a_shipper_refuses_faults_it_cannot_suffer() -> None:
    _, shipper = make()
    with pytest.raises(InstrumentError, match="cannot suffer ln2_level_drop"):
        shipper.inject(LN2LevelDrop())
    with pytest.raises(InstrumentError, match="no sensor 'ln2_level_pct' can drift"):
        shipper.inject(SensorDrift(field="ln2_level_pct", rate_per_h=1.0))


async def test_a_charge_refills_a_spent_shipper_which_cools_back() -> None:
    _, shipper = make(hold_time_h=24.0)
    await anyio.sleep(36 * HOUR)  # spent 12 h ago: about -140 °C and warming
    assert (await shipper.status()).temperature_c > -150
    started = anyio.current_time()
    charged = await shipper.charge()
    assert anyio.current_time() - started == pytest.approx(20 * 60)  # pouring takes 20 min
    assert charged.hold_time_remaining_h == pytest.approx(24.0)
    assert charged.ln2_charge_pct == pytest.approx(100.0)
    await anyio.sleep(1 * HOUR)  # the new charge cools the well back
    status = await shipper.status()
    assert status.temperature_c < -185 and status.alarm is None
    assert status.hold_time_remaining_h == pytest.approx(23.0)
