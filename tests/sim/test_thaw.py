"""Post-thaw model and SimThawer: good curve ~70-75 %, poor curve lower, one thaw only."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cellauto.clock import Clock
from cellauto.errors import InstrumentError
from cellauto.instruments.controlled_rate_freezer import standard_freeze_profile
from cellauto.sim.freezer import SimControlledRateFreezer
from cellauto.sim.line import SIMULATORS
from cellauto.sim.material import Container, FrozenState
from cellauto.sim.thaw import SimThawer, post_thaw
from cellauto.sim.world import SimWorld

pytestmark = pytest.mark.anyio

ORIGIN = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def state(rate: float | None, rise: float = 0.5, **kw: float) -> FrozenState:
    return FrozenState(frozen_at_h=1.0, cooling_rate_c_per_min=rate, latent_heat_rise_c=rise, **kw)


def test_a_good_curve_thaws_a_92_pct_product_at_about_70_to_76_pct() -> None:
    outcome = post_thaw(state(-1.0))
    assert 70.0 <= outcome.viability_pct(92.0) <= 76.0
    assert 0.70 <= outcome.viable_recovery <= 0.80


@pytest.mark.parametrize(
    "poor",
    [
        state(-0.3),  # too slow: solution effects
        state(-5.0),  # too fast: intracellular ice
        state(-1.0, rise=5.0),  # uncompensated latent heat
        state(-1.0, dmso_exposure_h=3.0),
        state(-1.0, rewarming_c=20.0),
        state(None),  # no phase change
    ],
)
def test_a_poor_curve_thaws_lower(poor: FrozenState) -> None:
    good = post_thaw(state(-1.0))
    worse = post_thaw(poor)
    assert worse.survival < good.survival and worse.viable_recovery < good.viable_recovery


def test_the_patients_cryo_sensitivity_scales_survival() -> None:
    typical = post_thaw(state(-1.0)).survival
    assert post_thaw(state(-1.0), cryo_sensitivity=0.9).survival == pytest.approx(0.9 * typical)


async def frozen_bag(seed: int = 1) -> tuple[SimWorld, Container]:
    world = SimWorld(Clock(ORIGIN), seed=seed)
    bag = Container("bag 1", viable_cells=9.2e8, dead_cells=0.8e8, volume_ml=70.0, dmso_pct=7.5)
    world.add_container(bag)
    freezer = SimControlledRateFreezer(world)
    await freezer.load_profile(standard_freeze_profile(fill_ml=70.0))
    await freezer.start(["bag 1"])
    async for _ in freezer.temperatures(300.0):
        pass
    return world, bag


async def test_the_freezer_leaves_a_frozen_state_and_the_thawer_applies_it_once() -> None:
    world, bag = await frozen_bag()
    assert bag.frozen is not None and not bag.frozen.thawed
    assert bag.frozen.cooling_rate_c_per_min == pytest.approx(-1.0, abs=0.2)
    thawer = SimThawer(world)
    result = await thawer.thaw("bag 1")
    assert result.container_id == "bag 1" and result.duration_s > 0
    assert 70.0 <= bag.viability_pct <= 76.0
    assert 0.70 <= bag.viable_cells / 9.2e8 <= 0.80
    assert bag.frozen is not None and bag.frozen.thawed
    with pytest.raises(InstrumentError, match="thawed before"):
        await thawer.thaw("bag 1")


async def test_the_thawer_refuses_a_container_never_frozen() -> None:
    world = SimWorld(Clock(ORIGIN), seed=1)
    world.add_container(Container("fresh", viable_cells=1e8, volume_ml=10.0))
    with pytest.raises(InstrumentError, match="not frozen"):
        await SimThawer(world).thaw("fresh")


def test_the_simulated_line_serves_the_thawer() -> None:
    assert SimThawer in SIMULATORS
