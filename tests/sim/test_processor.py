"""SimCellProcessor: program statistics, progress, idempotency, refusals, abort, sampling."""

from __future__ import annotations

from datetime import UTC, datetime

import anyio
import numpy as np
import pytest

from cellauto.clock import Clock
from cellauto.errors import InstrumentError, OutOfRangeError
from cellauto.instruments.cell_processor import ProgramInputs, ProgramResult
from cellauto.sim.faults import CommandFailure
from cellauto.sim.material import Container
from cellauto.sim.processor import SimCellProcessor
from cellauto.sim.world import SimWorld

pytestmark = pytest.mark.anyio

ORIGIN = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)
LABEL = "=G123498654321 00"
HOUR = 3600.0


def make(seed: int = 1, **bag: float) -> tuple[SimWorld, SimCellProcessor, Container]:
    world = SimWorld(Clock(ORIGIN), seed=seed)
    fields = {"viable_cells": 5e9, "dead_cells": 3e8, "volume_ml": 250.0, "t_cell_fraction": 0.55}
    source = world.add_container(Container("apheresis bag", label=LABEL, **(fields | bag)))
    return world, SimCellProcessor(world), source


def inputs(output: str = "enriched", source: str = "apheresis bag", **params: float):
    return ProgramInputs(source_container_id=source, output_container_id=output, parameters=params)


async def run(proc: SimCellProcessor, template: str, task: str = "T1", **kw: object):
    return await proc.run_program(template, inputs(**kw), task)  # type: ignore[arg-type]


async def test_programs_lists_the_four_templates() -> None:
    _, proc, _ = make()
    templates = {t.template_id: t for t in await proc.programs()}
    assert set(templates) == {
        "CD4CD8_ENRICHMENT",
        "CD3_ENRICHMENT",
        "WASH_CONCENTRATE",
        "FORMULATE_FILL",
    }
    assert templates["CD4CD8_ENRICHMENT"].typical_duration_h == 4.5
    fill = {p.name: p for p in templates["FORMULATE_FILL"].parameters}
    assert (fill["dmso_pct"].low, fill["dmso_pct"].high, fill["dmso_pct"].default) == (5, 10, 7.5)


@pytest.mark.parametrize(
    ("template", "purity_mean", "purity_low"),
    [("CD4CD8_ENRICHMENT", 0.970, 0.85), ("CD3_ENRICHMENT", 0.883, 0.6)],
)
async def test_enrichment_recovery_and_purity_over_200_seeds(
    template: str, purity_mean: float, purity_low: float
) -> None:
    recovery, purity = [], []
    for seed in range(200):
        world, proc, _ = make(seed)
        result = await run(proc, template)
        out = world.containers["enriched"]
        recovery.append(out.viable_cells * out.t_cell_fraction / (5e9 * 0.55))
        purity.append(out.t_cell_fraction)
        assert result.success and out.volume_ml == 100.0 and out.label == LABEL
        before_loss_pct = 100 * out.viable_cells / (out.viable_cells + 0.05 * 3e8)  # 5 % kept
        assert 1.0 - 1e-6 <= before_loss_pct - result.viability_pct <= 3.0 + 1e-6
    assert np.mean(recovery) == pytest.approx(0.55, abs=0.02)
    assert 0.04 < np.std(recovery) < 0.08
    assert min(recovery) >= 0.30 - 1e-9 and max(recovery) <= 0.75 + 1e-9
    assert np.mean(purity) == pytest.approx(purity_mean, abs=0.015)
    assert min(purity) >= purity_low - 1e-9 and max(purity) <= 0.995 + 1e-9


async def test_wash_concentrate_recovery_and_viability_loss_over_200_seeds() -> None:
    recovery = []
    for seed in range(200):
        world, proc, _ = make(seed, viable_cells=3e9, dead_cells=2e8, car_fraction=0.3)
        result = await run(proc, "WASH_CONCENTRATE", output="washed")
        out = world.containers["washed"]
        recovery.append(out.viable_cells / 3e9)
        before_loss_pct = 100 * out.viable_cells / (out.viable_cells + 1e8)  # dead halved
        assert 1.0 - 1e-6 <= before_loss_pct - result.viability_pct <= 3.0 + 1e-6
        assert (out.volume_ml, out.t_cell_fraction, out.car_fraction) == (20.0, 0.55, 0.3)
    assert np.mean(recovery) == pytest.approx(0.88, abs=0.01)
    assert min(recovery) >= 0.80 - 1e-9


async def test_wash_over_capacity_completes_flagged_with_reduced_recovery() -> None:
    # 4.4e9 + 3e8 = 4.7e9 cells: the 0.7e9 above 4e9 are recovered at 30 %
    world, proc, _ = make(viable_cells=4.4e9)
    result = await run(proc, "WASH_CONCENTRATE", output="washed")
    assert result.success and "washed" in world.containers
    (flag,) = result.limit_flags
    assert (flag.quantity, flag.value, flag.limit, flag.unit) == (
        "input cells",
        pytest.approx(4.7e9),
        4e9,
        "cells",
    )
    assert "recovery reduced" in flag.message
    recovery = world.containers["washed"].viable_cells / 4.4e9
    within = 4e9 / 4.7e9
    assert within * 0.80 + (1 - within) * 0.30 <= recovery <= within * 0.95 + (1 - within) * 0.30
    clean_world, clean_proc, _ = make(viable_cells=3.6e9)  # the same draws, within capacity
    await run(clean_proc, "WASH_CONCENTRATE", output="washed")
    drawn = clean_world.containers["washed"].viable_cells / 3.6e9
    assert recovery == pytest.approx(within * drawn + (1 - within) * 0.30)


async def test_wash_within_capacity_has_no_flag() -> None:
    _, proc, _ = make(viable_cells=3e9)
    result = await run(proc, "WASH_CONCENTRATE", output="washed")
    assert result.success and result.limit_flags == []


async def test_wash_far_over_capacity_fails_and_returns_the_input() -> None:
    world, proc, source = make(viable_cells=6.5e9)  # 6.8e9 > 1.5 x 4e9
    result = await run(proc, "WASH_CONCENTRATE", output="washed")
    assert not result.success and "membrane pressure alarm" in result.message
    assert "returned to 'apheresis bag'" in result.message
    assert "washed" not in world.containers
    assert source.volume_ml == 250.0 and source.viable_cells == pytest.approx(6.5e9)
    (flag,) = result.limit_flags
    assert "program failed" in flag.message


async def test_progress_rises_with_process_time_and_output_appears_at_completion() -> None:
    world, proc, source = make()
    run_id = await proc.start_program("CD4CD8_ENRICHMENT", inputs(), "T1")
    assert source.volume_ml == 0.0  # the input is in the tubing set
    progress = []
    for _ in range(4):
        status = await proc.program_status(run_id)
        assert status.state == "running" and status.ended_process_time_s is None
        progress.append(status.progress_pct)
        await anyio.sleep(HOUR)
    assert progress == pytest.approx([0.0, 100 / 4.5, 200 / 4.5, 300 / 4.5])
    await anyio.sleep(0.4 * HOUR)  # 4.4 h
    assert "enriched" not in world.containers
    with pytest.raises(InstrumentError, match="still running"):
        await proc.program_result(run_id)
    await anyio.sleep(0.2 * HOUR)  # 4.6 h: the output is there without anyone polling
    assert "enriched" in world.containers
    status = await proc.program_status(run_id)
    assert (status.state, status.progress_pct, status.phase) == ("complete", 100.0, "complete")
    assert status.ended_process_time_s == pytest.approx(status.started_process_time_s + 4.5 * HOUR)


async def test_phases_follow_progress() -> None:
    _, proc, _ = make(viable_cells=3e9)
    run_id = await proc.start_program("WASH_CONCENTRATE", inputs(), "T1")
    phases = []
    for _ in range(3):
        phases.append((await proc.program_status(run_id)).phase)
        await anyio.sleep(0.5 * HOUR)
    assert phases == ["priming", "washing", "concentration"]


async def test_run_program_polls_until_complete_and_returns_the_result() -> None:
    world, proc, _ = make(viable_cells=3e9)
    started = world.clock.monotonic()
    result = await run(proc, "WASH_CONCENTRATE", output="washed")
    assert isinstance(result, ProgramResult) and result.success
    assert 1.5 * HOUR <= world.clock.monotonic() - started <= 1.5 * HOUR + 600
    out = world.containers["washed"]
    assert result.output_container_id == "washed" and result.output_container_ids == ["washed"]
    assert result.viable_cells == out.viable_cells
    assert result.total_cells == pytest.approx(out.viable_cells + out.dead_cells)
    assert result.output_volume_ml == 20.0


async def test_start_program_is_idempotent_per_supervisory_task() -> None:
    world, proc, _ = make()
    first = await proc.start_program("CD3_ENRICHMENT", inputs(), "task-42")
    again = await proc.start_program("CD3_ENRICHMENT", inputs(), "task-42")
    assert again == first
    await anyio.sleep(5 * HOUR)
    assert await proc.start_program("CD3_ENRICHMENT", inputs(), "task-42") == first
    assert [c for c in world.containers if c != "apheresis bag"] == ["enriched"]
    with pytest.raises(InstrumentError, match=r"already started run .* with other inputs"):
        await proc.start_program("CD3_ENRICHMENT", inputs(output="other"), "task-42")


@pytest.mark.parametrize(
    ("template", "program_inputs", "error", "match"),
    [
        ("CD19_ENRICHMENT", inputs(), InstrumentError, "known: CD4CD8_ENRICHMENT, CD3_ENRICHMENT"),
        ("CD3_ENRICHMENT", inputs(output_volume_ml=500), OutOfRangeError, "above the limit 300 mL"),
        ("CD3_ENRICHMENT", inputs(output_volume_ml=5), OutOfRangeError, "below the limit 20 mL"),
        ("CD3_ENRICHMENT", inputs(volume_ml=50), OutOfRangeError, "known: output_volume_ml"),
        ("CD3_ENRICHMENT", inputs(source="nope"), InstrumentError, "no container 'nope'"),
        ("CD3_ENRICHMENT", inputs(output="apheresis bag"), InstrumentError, "already exists"),
        ("WASH_CONCENTRATE", inputs(final_volume_ml=300), OutOfRangeError, "limit 200 mL"),
    ],
)
async def test_refusals_start_nothing(
    template: str, program_inputs: ProgramInputs, error: type[Exception], match: str
) -> None:
    world, proc, source = make(viable_cells=2e9)
    with pytest.raises(error, match=match):
        await proc.start_program(template, program_inputs, "T1")
    assert source.volume_ml == 250.0 and source.viable_cells == 2e9
    assert await proc.active_program() is None and list(world.containers) == ["apheresis bag"]


async def test_refuses_a_second_program_while_one_runs() -> None:
    world, proc, _ = make()
    world.add_container(Container("second bag", viable_cells=1e9, volume_ml=100))
    run_id = await proc.start_program("CD3_ENRICHMENT", inputs(), "T1")
    with pytest.raises(InstrumentError, match=f"run {run_id} .* is running"):
        await proc.start_program("CD3_ENRICHMENT", inputs("e2", "second bag"), "T2")
    assert world.containers["second bag"].volume_ml == 100
    await proc.abort_program(run_id)


async def test_abort_returns_the_input_and_frees_the_processor() -> None:
    world, proc, source = make()
    run_id = await proc.start_program("CD4CD8_ENRICHMENT", inputs(), "T1")
    await anyio.sleep(HOUR)
    status = await proc.abort_program(run_id)
    assert status.state == "aborted" and status.progress_pct == pytest.approx(100 / 4.5)
    assert status.ended_process_time_s == pytest.approx(status.started_process_time_s + HOUR)
    assert (source.volume_ml, source.viable_cells, source.dead_cells) == (250.0, 5e9, 3e8)
    assert await proc.abort_program(run_id) == status  # retry-safe
    result = await proc.program_result(run_id)
    assert not result.success and result.output_container_id is None
    assert "returned to 'apheresis bag'" in result.message
    await anyio.sleep(5 * HOUR)
    assert "enriched" not in world.containers
    assert (await proc.program_status(run_id)).state == "aborted"
    second = await run(proc, "CD4CD8_ENRICHMENT", task="T2")
    assert second.success
    with pytest.raises(InstrumentError, match="already ended"):
        await proc.abort_program(second.device_program_run_id)


async def test_draw_sample_volume_limits() -> None:
    world, proc, _ = make()
    await run(proc, "CD4CD8_ENRICHMENT")
    for volume, limit in ((0.05, "below the limit 0.1 mL"), (6.0, "above the limit 5 mL")):
        with pytest.raises(OutOfRangeError, match=limit):
            await proc.draw_sample("enriched", volume)
    before = world.clock.monotonic()
    sample = await proc.draw_sample("enriched", 1.0)
    assert world.clock.monotonic() - before == pytest.approx(60.0)
    assert (sample.source_container_id, sample.volume_ml) == ("enriched", 1.0)
    assert world.sample(sample, where="test").volume_ml == 1.0
    assert world.containers["enriched"].volume_ml == pytest.approx(99.0)
    with pytest.raises(OutOfRangeError, match="apheresis bag"):  # emptied by the program
        await proc.draw_sample("apheresis bag", 1.0)


async def test_formulate_fill_volumes_dmso_and_bag_split() -> None:
    world, proc, _ = make(viable_cells=2e9, dead_cells=1e8, volume_ml=20.0, car_fraction=0.3)
    params = {"product_volume_ml": 20.0, "final_volume_ml": 100.0, "bag_count": 2.0}
    result = await run(proc, "FORMULATE_FILL", output="product", **params)
    assert result.output_container_ids == ["product 1", "product 2"]
    assert result.output_container_id == "product 1"
    bags = [world.containers[b] for b in result.output_container_ids]
    assert bags[0].volume_ml == pytest.approx(bags[1].volume_ml)
    assert 0.98 <= result.output_volume_ml / 100.0 <= 0.99  # 1-2 % hold-up
    assert 0.98 <= result.viable_cells / 2e9 <= 0.99
    assert [b.dmso_pct for b in bags] == [7.5, 7.5]
    assert bags[0].viable_cells == pytest.approx(bags[1].viable_cells)
    assert all(b.label == LABEL and b.car_fraction == 0.3 for b in bags)
    assert 92.0 <= result.viability_pct <= 94.3  # 95.2 % in, 1-3 points lost


async def test_formulate_fill_defaults_and_limits() -> None:
    _, proc, _ = make(viable_cells=2e9, volume_ml=20.0)
    result = await run(proc, "FORMULATE_FILL", output="product")  # 7.5 % DMSO from CS10
    assert result.output_container_ids == ["product"]
    assert 0.98 <= result.output_volume_ml / 80.0 <= 0.99  # product may be 25 % of the volume
    bad = [
        ({"final_volume_ml": 50.0}, "outside the limit 80..500 mL"),
        ({"dmso_pct": 12.0}, "above the limit 10 %"),
        ({"bag_count": 5.0}, "above the limit 4"),
        ({"bag_count": 2.5}, "whole number"),
        ({"product_volume_ml": 30.0}, "above the limit 20 mL"),
    ]
    _, proc, _ = make(viable_cells=2e9, volume_ml=20.0)
    for params, match in bad:
        with pytest.raises(OutOfRangeError, match=match):
            await proc.start_program("FORMULATE_FILL", inputs("product", **params), "T1")
    assert await proc.active_program() is None


async def test_command_failure_leaves_nothing_started() -> None:
    world, proc, source = make()
    proc.inject(CommandFailure(message="tubing set not detected"))
    assert len(await proc.programs()) == 4  # queries are unaffected
    with pytest.raises(InstrumentError, match="start_program failed: tubing set not detected"):
        await proc.start_program("CD4CD8_ENRICHMENT", inputs(), "T1")
    assert source.volume_ml == 250.0 and await proc.active_program() is None
    await anyio.sleep(5 * HOUR)
    assert list(world.containers) == ["apheresis bag"]
    run_id = await proc.start_program("CD4CD8_ENRICHMENT", inputs(), "T1")  # the retry
    assert run_id == "CP-0001-RUN0001"
    await proc.abort_program(run_id)


async def test_same_seed_same_numbers() -> None:
    async def outcome(seed: int) -> tuple[float, float]:
        world, proc, _ = make(seed)
        result = await run(proc, "CD3_ENRICHMENT")
        return result.viable_cells, world.containers["enriched"].t_cell_fraction

    assert await outcome(7) == await outcome(7)
    assert await outcome(7) != await outcome(8)
