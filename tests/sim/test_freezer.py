"""SimControlledRateFreezer: thermal curve, phase change, compensation, refusals, faults."""

from __future__ import annotations

from datetime import UTC, datetime

import anyio
import pytest
from pydantic import ValidationError

from cellauto.clock import Clock
from cellauto.errors import InstrumentError, OutOfRangeError
from cellauto.instruments.controlled_rate_freezer import (
    FreezeProfile,
    FreezeResult,
    FreezerReading,
    Hold,
    Ramp,
    standard_freeze_profile,
)
from cellauto.sim.faults import CommandFailure, Disconnect, LN2LevelDrop, PowerLoss
from cellauto.sim.freezer import SimControlledRateFreezer
from cellauto.sim.freezer_model import FreezerModel, bag_time_constant_min
from cellauto.sim.material import Container
from cellauto.sim.world import SimWorld

pytestmark = pytest.mark.anyio

ORIGIN = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
STANDARD = standard_freeze_profile()
UNCOMPENSATED = standard_freeze_profile(heat_of_fusion_compensation=False)


def make(seed: int = 1, volume_ml: float = 70.0) -> tuple[SimWorld, SimControlledRateFreezer]:
    world = SimWorld(Clock(ORIGIN), seed=seed)
    world.add_container(
        Container("bag 1", viable_cells=1e8, dead_cells=5e6, volume_ml=volume_ml, dmso_pct=7.5)
    )
    return world, SimControlledRateFreezer(world)


async def freeze(
    freezer: SimControlledRateFreezer,
    profile: FreezeProfile = STANDARD,
    interval_s: float = 30.0,
    power_loss: tuple[float, float] | None = None,
) -> tuple[list[FreezerReading], FreezeResult]:
    """Run ``profile`` on bag 1, reading the stream; power_loss = (at run min, for min)."""
    await freezer.load_profile(profile)
    await freezer.start(["bag 1"])
    if power_loss is not None:
        at_h = freezer.world.elapsed_h() + power_loss[0] / 60.0
        freezer.inject(PowerLoss(at_h=at_h, duration_min=power_loss[1]))
    readings = [reading async for reading in freezer.temperatures(interval_s)]
    return readings, await freezer.result()


def timeline(
    readings: list[FreezerReading], result: FreezeResult
) -> list[tuple[float, FreezerReading]]:
    """Each reading with its time in minutes after the phase change."""
    assert result.phase_change_process_time_s is not None
    return [((r.process_time_s - result.phase_change_process_time_s) / 60.0, r) for r in readings]


def lag_c(reading: FreezerReading) -> float:
    return reading.sample_temperature_c - reading.chamber_temperature_c


async def test_standard_profile_freezes_the_bag_with_lag_phase_change_and_plateau() -> None:
    _, freezer = make()
    readings, result = await freeze(freezer)
    assert result.end_state == "complete" and result.phase_change_detected
    assert result.profile_name == STANDARD.name and result.container_ids == ["bag 1"]
    assert result.power_interruptions == 0
    assert result.phase_change_temperature_c is not None
    assert -8.5 <= result.phase_change_temperature_c <= -5.0  # supercooled
    # before the phase change, during the -1 °C/min ramp the sample lags the chamber
    lags = [lag_c(r) for m, r in timeline(readings, result) if -6 < m < -1]
    assert lags and all(3.0 < lag < 8.0 for lag in lags)
    # after it the sample plateaus near the freezing point while the chamber is far colder
    plateau = [r for m, r in timeline(readings, result) if 0.5 < m < 4.0]
    assert all(-9.0 < r.sample_temperature_c < -4.0 for r in plateau)
    assert all(r.chamber_temperature_c < r.sample_temperature_c - 20 for r in plateau)
    assert 0.0 < result.max_latent_heat_rise_c < 2.0
    assert result.cooling_rate_through_phase_change_c_per_min == pytest.approx(-1.0, abs=0.25)
    assert -91.0 < result.final_sample_temperature_c < -87.0
    assert (await freezer.status()).state == "complete"
    quality = freezer.frozen["bag 1"]
    assert 0.70 <= quality.viability_factor <= 0.75
    assert quality.result == result


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_compensation_lowers_the_rise_and_shortens_the_plateau(seed: int) -> None:
    runs = {}
    for name, profile in (("with", STANDARD), ("without", UNCOMPENSATED)):
        _, freezer = make(seed)
        readings, result = await freeze(freezer, profile, interval_s=60.0)
        assert result.end_state == "complete" and result.phase_change_temperature_c is not None
        below = result.phase_change_temperature_c - 5.0
        plateau_min = next(
            m for m, r in timeline(readings, result) if r.sample_temperature_c < below
        )
        runs[name] = (result, plateau_min, freezer.frozen["bag 1"].viability_factor)
    (comp, comp_plateau, comp_viability), (plain, plain_plateau, plain_viability) = (
        runs["with"],
        runs["without"],
    )
    assert comp.max_latent_heat_rise_c < plain.max_latent_heat_rise_c
    assert comp_plateau < plain_plateau - 5.0
    assert plain.cooling_rate_through_phase_change_c_per_min is not None
    assert plain.cooling_rate_through_phase_change_c_per_min > -0.7  # slowed by latent heat
    assert comp_viability > plain_viability


async def test_a_larger_bag_lags_more() -> None:
    lags = []
    for volume_ml in (20.0, 80.0):
        _, freezer = make(volume_ml=volume_ml)
        readings, result = await freeze(freezer, interval_s=60.0)
        lags.append(max(lag_c(r) for m, r in timeline(readings, result) if m < -1))
    assert lags[1] > lags[0] + 2.0


async def test_out_of_range_and_inconsistent_profiles_are_refused() -> None:
    _, freezer = make()
    too_cold = FreezeProfile(
        name="LN2 dunk", segments=[Ramp(rate_c_per_min=-10, end_temperature_c=-200)]
    )
    with pytest.raises(
        OutOfRangeError, match=r"segments\[0\]\.end_temperature_c -200 °C is below the limit -180"
    ):
        await freezer.load_profile(too_cold)
    too_warm = FreezeProfile(name="warm", start_temperature_c=45, segments=[Hold(duration_min=5)])
    with pytest.raises(OutOfRangeError, match="start_temperature_c 45 °C is above the limit 40"):
        await freezer.load_profile(too_warm)
    assert (await freezer.status()).state == "idle"
    with pytest.raises(ValidationError, match="cannot go from 4 °C to 10 °C"):
        FreezeProfile(name="x", segments=[Ramp(rate_c_per_min=-1, end_temperature_c=10)])
    with pytest.raises(ValidationError, match="never ends"):
        Ramp(rate_c_per_min=0, end_temperature_c=-10)
    with pytest.raises(ValidationError):
        Ramp(rate_c_per_min=-60, end_temperature_c=-10)
    with pytest.raises(ValidationError):
        FreezeProfile(name="empty", segments=[])


async def test_start_is_refused_without_profile_containers_or_while_running() -> None:
    _, freezer = make()
    with pytest.raises(InstrumentError, match="no profile loaded"):
        await freezer.start(["bag 1"])
    with pytest.raises(InstrumentError, match="no finished run"):
        await freezer.result()
    await freezer.load_profile(STANDARD)
    with pytest.raises(InstrumentError, match="no container 'bag 9' on the line; known: bag 1"):
        await freezer.start(["bag 1", "bag 9"])
    with pytest.raises(InstrumentError, match="must name each container once"):
        await freezer.start([])
    assert (await freezer.status()).state == "loaded"
    status = await freezer.start(["bag 1"])
    assert status.state == "running" and status.loaded_container_ids == ["bag 1"]
    with pytest.raises(InstrumentError, match="already running"):
        await freezer.start(["bag 1"])
    with pytest.raises(InstrumentError, match="during a run"):
        await freezer.load_profile(UNCOMPENSATED)
    with pytest.raises(InstrumentError, match="no finished run yet"):
        await freezer.result()


@pytest.mark.parametrize(
    ("at_min", "for_min", "end_state"), [(35.0, 60.0, "failed"), (5.0, 10.0, "complete")]
)
async def test_power_loss_warms_the_chamber_and_fails_a_rewarmed_run(
    at_min: float, for_min: float, end_state: str
) -> None:
    _, clean = make()
    await freeze(clean, interval_s=60.0)
    _, freezer = make()
    readings, result = await freeze(freezer, interval_s=60.0, power_loss=(at_min, for_min))
    start_s = readings[0].process_time_s
    during = [
        r for r in readings if at_min + 1 < (r.process_time_s - start_s) / 60 < at_min + for_min
    ]
    chamber = [r.chamber_temperature_c for r in during]
    assert chamber == sorted(chamber) and chamber[-1] > chamber[0] + 0.8 * (for_min - 2)
    assert result.power_interruptions == 1
    assert result.end_state == end_state
    assert freezer.frozen["bag 1"].viability_factor < clean.frozen["bag 1"].viability_factor
    if end_state == "failed":
        assert "above the -60 °C limit" in result.message
        assert freezer.frozen["bag 1"].viability_factor < 0.5
        assert (await freezer.status()).state == "failed"
    assert -91.0 < result.final_sample_temperature_c < -87.0  # the run went on


async def test_stream_ends_at_completion_with_readings_in_time_order() -> None:
    _, freezer = make()
    readings, result = await freeze(freezer, interval_s=45.0)
    times = [r.process_time_s for r in readings]
    assert times == sorted(times) and len(set(times)) == len(times)
    segments = [r.segment_index for r in readings]
    assert segments == sorted(segments) and segments[-1] == len(STANDARD.segments) - 1
    status = await freezer.status()
    assert status.state == "complete"
    assert times[-1] - times[0] == pytest.approx(status.elapsed_min * 60.0)
    assert readings[-1].sample_temperature_c == pytest.approx(
        result.final_sample_temperature_c, abs=0.3
    )
    # a stream opened after the end yields the final reading and stops
    assert len([r async for r in freezer.temperatures(60.0)]) == 1


async def test_same_seed_gives_identical_readings() -> None:
    runs = []
    for seed in (7, 7, 8):
        _, freezer = make(seed)
        runs.append(await freeze(freezer, interval_s=120.0))
    assert runs[0] == runs[1]
    assert runs[0][1].phase_change_temperature_c != runs[2][1].phase_change_temperature_c


async def test_run_profile_composite_loads_starts_and_waits() -> None:
    _, freezer = make()
    result = await freezer.run_profile(STANDARD, ["bag 1"], poll_interval_s=120.0)
    assert result.end_state == "complete"
    assert (await freezer.status()).state == "complete"
    assert "frozen in" in freezer.world.containers["bag 1"].history[-1]


async def test_generic_and_foreign_faults() -> None:
    world, freezer = make()
    freezer.inject(Disconnect(duration_h=0.5))
    with pytest.raises(InstrumentError, match="disconnected"):
        await freezer.status()
    with pytest.raises(InstrumentError, match="disconnected"):
        await freezer.load_profile(STANDARD)
    freezer.inject(CommandFailure(at_h=world.elapsed_h() + 1.0))
    await anyio.sleep(0.6 * 3600)
    assert (await freezer.status()).state == "idle"
    await freezer.load_profile(STANDARD)
    await anyio.sleep(0.5 * 3600)
    with pytest.raises(InstrumentError, match="simulated command failure"):
        await freezer.start(["bag 1"])
    with pytest.raises(InstrumentError, match="cannot suffer ln2_level_drop"):
        freezer.inject(LN2LevelDrop())


async def freeze_load(
    seed: int, volumes: list[float], profile: FreezeProfile, model: FreezerModel | None = None
) -> FreezeResult:
    """Freeze bags of ``volumes`` together; the probe is in the first."""
    world = SimWorld(Clock(ORIGIN), seed=seed)
    ids = [f"bag {i + 1}" for i in range(len(volumes))]
    for cid, volume in zip(ids, volumes, strict=True):
        world.add_container(Container(cid, viable_cells=1e8, volume_ml=volume, dmso_pct=7.5))
    freezer = SimControlledRateFreezer(world, model=model)
    await freezer.load_profile(profile)
    await freezer.start(ids)
    async for _ in freezer.temperatures(120.0):
        pass
    return await freezer.result()


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_a_loaded_chamber_cools_the_probe_bag_slower_than_one_bag(seed: int) -> None:
    profile = standard_freeze_profile(fill_ml=70.0)
    one = await freeze_load(seed, [70.0], profile)
    three = await freeze_load(seed, [70.0] * 3, profile)
    six = await freeze_load(seed, [70.0] * 6, profile)
    rates = [r.cooling_rate_through_phase_change_c_per_min for r in (one, three, six)]
    assert None not in rates
    assert rates[0] < rates[1] < rates[2]  # negative: each more bags, slower
    assert (one.load_ml, three.load_ml, six.load_ml) == (70.0, 210.0, 420.0)


async def test_a_load_over_the_rated_load_is_flagged_and_the_chamber_falls_behind() -> None:
    model = FreezerModel(rated_load_ml=500.0, max_cooling_w=150.0)
    result = await freeze_load(1, [100.0] * 6, standard_freeze_profile(fill_ml=100.0), model)
    flags = {flag.quantity: flag for flag in result.limit_flags}
    assert flags["chamber load"].value == 600.0 and flags["chamber load"].limit == 500.0
    assert "could not follow the profile" in flags["chamber above setpoint"].message
    clean = await freeze_load(1, [100.0], standard_freeze_profile(fill_ml=100.0))
    assert clean.limit_flags == [] and clean.load_ml == 100.0


def test_a_bags_time_constant_follows_its_fill_thickness_not_volume() -> None:
    m = FreezerModel()
    tau = {v: bag_time_constant_min(m, v) for v in (1.8, 20.0, 70.0, 140.0)}
    assert tau[1.8] == m.vial_time_constant_min
    assert tau[140.0] == pytest.approx(2 * tau[70.0])  # twice as thick, twice the lag
    assert tau[70.0] == pytest.approx(4.0 * (700 / 150) / 4.0)  # 4.7 mm in a 150 cm² bag
    thin = FreezerModel(bag_face_area_cm2=300.0)  # same volume spread thinner
    assert bag_time_constant_min(thin, 70.0) == pytest.approx(tau[70.0] / 2)


@pytest.mark.parametrize("fill_ml", [50.0, 70.0, 100.0])
@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_the_standard_profile_for_each_fill_cools_at_about_1_c_per_min(
    fill_ml: float, seed: int
) -> None:
    result = await freeze_load(seed, [fill_ml], standard_freeze_profile(fill_ml=fill_ml))
    rate = result.cooling_rate_through_phase_change_c_per_min
    assert rate is not None and -1.2 <= rate <= -0.85  # nucleation -> -20 °C sample
    assert result.max_latent_heat_rise_c < 2.0
    assert result.final_sample_temperature_c < -87.0
