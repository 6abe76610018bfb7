"""SimCellCounter's linear range: range_flag, dilution, coincidence (issue 14, §3.6)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from cellauto.clock import Clock
from cellauto.instruments.cell_counter import CellCount
from cellauto.sim.counter import SimCellCounter
from cellauto.sim.material import Container
from cellauto.sim.world import SimWorld

pytestmark = pytest.mark.anyio

ORIGIN = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)


async def counts(
    per_ml: float, *, dilution: float = 1.0, n: int = 40, coincidence: bool = True
) -> list[CellCount]:
    """``n`` counts of a bag at ``per_ml`` total cells/mL (90 % viable), one world."""
    world = SimWorld(Clock(ORIGIN), seed=3)
    bag = world.add_container(
        Container(
            "bag", viable_cells=0.9 * per_ml * 100, dead_cells=0.1 * per_ml * 100, volume_ml=100.0
        )
    )
    counter = (
        SimCellCounter(world)
        if coincidence
        else SimCellCounter(world, coincidence_cells_per_ml=None)
    )
    out = []
    for _ in range(n):
        sample = world.draw_sample(bag, 0.5, prefix="S")
        out.append(await counter.count(sample, dilution=dilution))
    return out


def _mean(results: list[CellCount]) -> float:
    return float(np.mean([c.total_cells_per_ml for c in results]))


async def test_a_count_in_the_linear_range_is_unbiased_and_says_so() -> None:
    results = await counts(2e6)
    assert {c.range_flag for c in results} == {"in_range"}
    assert _mean(results) == pytest.approx(2e6, rel=0.03)


async def test_a_dense_sample_undiluted_is_above_range_and_counted_low() -> None:
    results = await counts(1.5e8)
    assert {c.range_flag for c in results} == {"above_range"}
    # coincidence: 1e7 + 1.4e8 / (1 + 1.4e8 / 5e8) = 1.19e8
    assert _mean(results) == pytest.approx(1.19e8, rel=0.03)


async def test_coincidence_is_on_by_default_and_can_be_turned_off() -> None:
    assert SimCellCounter(SimWorld(Clock(ORIGIN), seed=3)).coincidence_cells_per_ml == 5e8
    results = await counts(1.5e8, coincidence=False)
    assert {c.range_flag for c in results} == {"above_range"}
    assert _mean(results) == pytest.approx(1.5e8, rel=0.03)


async def test_a_dilution_brings_a_dense_sample_into_range() -> None:
    results = await counts(1.5e8, dilution=20.0)
    assert {c.range_flag for c in results} == {"in_range"}
    assert {c.dilution for c in results} == {20.0}
    assert _mean(results) == pytest.approx(1.5e8, rel=0.03)  # of the undiluted sample


async def test_a_sparse_sample_is_below_range_and_noisier() -> None:
    sparse, dense = await counts(2e4), await counts(2e6)
    assert {c.range_flag for c in sparse} == {"below_range"}

    def rsd(results: list[CellCount]) -> float:
        values = [c.total_cells_per_ml for c in results]
        return float(np.std(values) / np.mean(values))

    # Poisson: 2e4/mL x 0.0005 mL = 10 cells imaged -> about 32 % RSD; 2e6/mL: about 6 %
    assert rsd(sparse) > 0.2 > 0.1 > rsd(dense)


async def viabilities(per_ml: float, dead_share: float, n: int = 200) -> list[float]:
    """``n`` viabilities counted in a bag at ``per_ml`` cells/mL, ``dead_share`` dead."""
    world = SimWorld(Clock(ORIGIN), seed=5)
    bag = world.add_container(
        Container(
            "bag",
            viable_cells=(1 - dead_share) * per_ml * 100,
            dead_cells=dead_share * per_ml * 100,
            volume_ml=100.0,
        )
    )
    counter = SimCellCounter(world)
    out = []
    for _ in range(n):
        count = await counter.count(world.draw_sample(bag, 0.5, prefix="S"))
        out.append(count.viability_pct)
    return out


async def test_a_culture_with_dead_cells_never_reads_100_percent_viable() -> None:
    values = await viabilities(2e6, 0.02)  # 98 % viable, 1,000 cells imaged
    assert max(values) < 100.0
    assert float(np.mean(values)) == pytest.approx(98.0, abs=0.3)
    # binomial-like: the spread of a 2 % dead share in 400 cells, not a fixed 1 point
    assert 0.25 < float(np.std(values)) < 0.8  # sqrt(0.02 x 0.98 / 1000) = 0.44 points


async def test_viability_noise_is_binomial_wider_when_fewer_cells_are_imaged() -> None:
    sparse, dense = await viabilities(2e5, 0.10), await viabilities(5e6, 0.10)
    assert float(np.std(sparse)) > 2 * float(np.std(dense))
    assert max(await viabilities(2e6, 0.0)) == 100.0  # no dead cells: 100 %
