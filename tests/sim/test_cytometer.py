"""SimFlowCytometer: counting noise around the truth, sample size limit, reproducibility."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from cellauto.clock import Clock
from cellauto.errors import InstrumentError, OutOfRangeError
from cellauto.instruments.cell_processor import ProgramInputs
from cellauto.instruments.flow_cytometer import Immunophenotype
from cellauto.sim.cytometer import SimFlowCytometer
from cellauto.sim.material import Container
from cellauto.sim.processor import SimCellProcessor
from cellauto.sim.world import SimWorld

pytestmark = pytest.mark.anyio

ORIGIN = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)


async def phenotype(seed: int, volume_ml: float = 0.5, **bag: float) -> Immunophenotype:
    world = SimWorld(Clock(ORIGIN), seed=seed)
    fields = {
        "viable_cells": 5e9,
        "dead_cells": 3e8,
        "volume_ml": 250.0,
        "t_cell_fraction": 0.55,
        "car_fraction": 0.37,
        "cd4_fraction": 0.6,
        "nk_fraction": 0.1,
    }
    bag_ = world.add_container(Container("harvest", **(fields | bag)))
    sample = world.draw_sample(bag_, volume_ml, prefix="T")
    return await SimFlowCytometer(world).immunophenotype(sample, operator="jdoe")


async def test_percentages_lie_within_counting_noise_and_bias_of_the_truth() -> None:
    results = [await phenotype(seed) for seed in range(40)]
    for r in results:
        assert r.events_acquired == 50_000 and r.operator == "jdoe"
        assert (r.cd3_of, r.car_of) == ("viable leukocytes", "CD3+ T cells")
        assert abs(r.cd3_pct - 55.0) < 2.5
        assert abs(r.car_pct - 37.0) < 2.5
        assert abs(r.viable_pct - 100 * 5e9 / 5.3e9) < 2.5
        assert abs(r.cd56_pct - 10.0) < 2.5
        assert 94.0 < r.cd4_pct + r.cd8_pct < 100.0  # a few % double negatives
    car = np.array([r.car_pct for r in results])
    assert np.mean(car) == pytest.approx(37.0 * 1.0, abs=0.4)
    assert 0.2 < np.std(car) < 1.5


async def test_acquisition_takes_about_20_minutes() -> None:
    world = SimWorld(Clock(ORIGIN), seed=1)
    bag = world.add_container(Container("harvest", viable_cells=1e9, volume_ml=100))
    sample = world.draw_sample(bag, 1.0, prefix="T")
    before = world.clock.monotonic()
    result = await SimFlowCytometer(world, "FC-0042").immunophenotype(sample)
    assert world.clock.monotonic() - before == pytest.approx(1200.0)
    assert result.acquired_at_process_time_s == pytest.approx(world.clock.now_s())
    assert result.instrument_serial == "FC-0042" and result.panel == "CAR-T release"


async def test_refuses_a_sample_with_too_few_cells() -> None:
    with pytest.raises(OutOfRangeError, match="below the limit 100000 cells"):
        await phenotype(1, volume_ml=0.1, viable_cells=1e8, dead_cells=0.0)  # 4e4 cells


async def test_refuses_an_unknown_panel() -> None:
    world = SimWorld(Clock(ORIGIN), seed=1)
    bag = world.add_container(Container("harvest", viable_cells=1e9, volume_ml=100))
    sample = world.draw_sample(bag, 1.0, prefix="T")
    with pytest.raises(InstrumentError, match="known: CAR-T release"):
        await SimFlowCytometer(world).immunophenotype(sample, "TIL panel")


async def test_same_seed_same_numbers() -> None:
    assert await phenotype(3) == await phenotype(3)
    assert await phenotype(3) != await phenotype(4)


async def test_reads_the_purity_of_an_enriched_product() -> None:
    world = SimWorld(Clock(ORIGIN), seed=5)
    world.add_container(
        Container(
            "apheresis bag", viable_cells=5e9, dead_cells=3e8, volume_ml=250.0, t_cell_fraction=0.55
        )
    )
    processor = SimCellProcessor(world)
    io = ProgramInputs(source_container_id="apheresis bag", output_container_id="enriched")
    await processor.run_program("CD3_ENRICHMENT", io, "T1")
    sample = await processor.draw_sample("enriched", 0.5)
    result = await SimFlowCytometer(world).immunophenotype(sample)
    assert result.cd3_pct == pytest.approx(
        100 * world.containers["enriched"].t_cell_fraction, abs=2
    )


async def test_cd56_negative_nk_cells_fall_outside_the_cd56_gate() -> None:
    """An NK product's CD56- CD16+ NK cells are neither CD3+ nor CD56+: the CD56+CD3-
    share is the NK share times their CD56+ part (a product reads below 100 %)."""
    nk = {"t_cell_fraction": 0.01, "nk_fraction": 0.98, "car_fraction": 0.0}
    plain = [await phenotype(seed, **nk) for seed in range(10)]
    gated = [await phenotype(seed, **nk, nk_cd56_negative_fraction=0.05) for seed in range(10)]
    assert np.mean([r.cd56_pct for r in plain]) == pytest.approx(98.0, abs=0.6)
    assert np.mean([r.cd56_pct for r in gated]) == pytest.approx(98.0 * 0.95, abs=0.6)
    assert np.mean([r.cd3_pct for r in gated]) == pytest.approx(1.0, abs=0.3)
