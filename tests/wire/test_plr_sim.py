"""SimLiquidHandler: PyLabRobot's trackers and the simulated world move together."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cellauto import Protocol, Run
from cellauto.clock import Clock
from cellauto.errors import InstrumentError, OutOfRangeError
from cellauto.instruments import Line
from cellauto.instruments.liquid_handler import LiquidHandler, TransferOutcomeUnknownError
from cellauto.instruments.plr import ContainerSpec, TrackerSnapshot
from cellauto.protocols import Runner
from cellauto.records import Journal
from cellauto.records.backend import Location
from cellauto.sim.base import SimInstrument
from cellauto.sim.counter import SimCellCounter
from cellauto.sim.faults import CommandFailure, Disconnect
from cellauto.sim.liquid_handler import SimLiquidHandler
from cellauto.sim.material import Container
from cellauto.sim.world import SimWorld
from tests.wire.test_plr_liquid_handler import FailingBackend

pytestmark = pytest.mark.anyio

ORIGIN = datetime(2026, 2, 2, 8, 0, tzinfo=UTC)


def line_world() -> SimWorld:
    world = SimWorld(Clock(ORIGIN), seed=3)
    culture = Container(
        "culture", viable_cells=2e9, dead_cells=1e8, volume_ml=200, car_fraction=0.4
    )
    world.add_container(culture)
    return world


def world_state(world: SimWorld) -> dict[str, dict[str, Any]]:
    return {cid: asdict(c) for cid, c in world.containers.items()}


def trackers(lh: SimLiquidHandler) -> Any:
    return TrackerSnapshot.take(lh.plr).state()


def assert_in_step(lh: SimLiquidHandler, world: SimWorld) -> None:
    """PyLabRobot's trackers (µL) hold what the world's containers (mL) hold."""
    on_deck = {cid: c.tracker.volume for cid, c in lh.layout.containers.items()}
    in_world = {cid: world.containers[cid].volume_ml * 1000 for cid in on_deck}
    assert on_deck == pytest.approx(in_world, abs=1e-6)
    assert all(c.tracker.pending_volume == c.tracker.volume for c in lh.layout.containers.values())


async def test_sampling_into_a_new_counting_vial_moves_cells_with_volume() -> None:
    world = line_world()
    lh = SimLiquidHandler(world)
    assert isinstance(lh, SimInstrument) and isinstance(lh, LiquidHandler)
    assert lh.identity.serial == "LH-0001" and lh.identity.adapter == "pylabrobot"
    started = world.clock.monotonic()
    done = await lh.transfer("culture", "count-vial-1", 2500)
    assert world.clock.monotonic() - started == pytest.approx(3 * 20.0)  # 3 cycles of 20 s
    vial, culture = world.containers["count-vial-1"], world.containers["culture"]
    assert vial.volume_ml == pytest.approx(2.5) and culture.volume_ml == pytest.approx(197.5)
    assert vial.viable_cells_per_ml == pytest.approx(1.0e7)  # same concentration as the culture
    assert vial.viability_pct == pytest.approx(culture.viability_pct)
    assert vial.car_fraction == pytest.approx(0.4)
    assert done.destination_volume_after_ul == pytest.approx(2500)
    assert done.source_volume_after_ul == pytest.approx(197_500)
    assert await lh.containers() == pytest.approx({"culture": 197_500, "count-vial-1": 2500})
    assert lh.layout.containers["count-vial-1"].category == "tube"  # in a tube rack
    assert lh.layout.containers["culture"].category == "trough"  # a bag
    assert_in_step(lh, world)


async def test_a_counter_counts_what_the_liquid_handler_delivered() -> None:
    world = line_world()
    await SimLiquidHandler(world).transfer("culture", "count-vial-1", 1000)
    sample = world.draw_sample(world.containers["count-vial-1"], 0.5, prefix="CC")
    count = await SimCellCounter(world).count(sample)
    assert count.total_cells_per_ml == pytest.approx(1.05e7, rel=0.2)


async def test_qc_aliquots_and_a_formulation_addition() -> None:
    world = line_world()
    lh = SimLiquidHandler(world)
    lh.load_container(ContainerSpec(container_id="cryostor", capacity_ul=50_000, volume_ul=20_000))
    qc = await lh.aliquot("culture", ["qc-sterility", "qc-endotoxin"], 500)
    assert [t.tips_used for t in qc] == [["tips_1:A1"], ["tips_1:B1"]]
    assert world.containers["qc-endotoxin"].volume_ml == pytest.approx(0.5)
    await lh.transfer("cryostor", "culture", 5000)
    assert world.containers["culture"].volume_ml == pytest.approx(204.0)
    assert world.containers["cryostor"].volume_ml == pytest.approx(15.0)
    assert await lh.volume("culture") == pytest.approx(204_000)
    assert await lh.tips_remaining() == 2 * 96 - 3
    assert_in_step(lh, world)


async def test_the_deck_follows_the_world_when_other_instruments_change_it() -> None:
    world = line_world()
    lh = SimLiquidHandler(world)
    assert await lh.volume("culture") == pytest.approx(200_000)
    world.containers["culture"].volume_ml = 1500.0  # fed by the bioreactor: beyond the bag
    assert await lh.volume("culture") == pytest.approx(1_500_000)
    await lh.transfer("culture", "qc-1", 100)
    assert await lh.volume("culture") == pytest.approx(1_499_900)


async def test_command_failure_leaves_world_and_trackers_unchanged() -> None:
    world = line_world()
    lh = SimLiquidHandler(world)
    await lh.transfer("culture", "count-vial-1", 100)
    world_before, trackers_before = world_state(world), trackers(lh)
    lh.inject(CommandFailure(message="gripper error"))
    with pytest.raises(InstrumentError, match="transfer failed: gripper error"):
        await lh.transfer("culture", "count-vial-2", 100)
    assert world_state(world) == world_before and trackers(lh) == trackers_before
    assert "count-vial-2" not in lh.layout.containers
    await lh.transfer("culture", "count-vial-2", 100)  # the fault was used up
    assert world.containers["count-vial-2"].volume_ml == pytest.approx(0.1)


async def test_backend_failure_mid_transfer_leaves_the_world_as_the_cycles_left_it() -> None:
    world = line_world()
    lh = SimLiquidHandler(world, backend=FailingBackend(fail_on_dispense=3))
    await lh.transfer("culture", "qc-1", 300)  # dispense 1
    culture_ml = world.containers["culture"].volume_ml
    with pytest.raises(
        TransferOutcomeUnknownError, match=r"dispense 1000 µL into qc-1 \(cycle 2 of 3\)"
    ):
        await lh.transfer("culture", "qc-1", 2500)  # cycle 1 done in both, cycle 2 fails
    # cycle 1 moved 1 mL with its cells; cycle 2's 1 mL went into the tip, not into qc-1
    assert world.containers["qc-1"].volume_ml == pytest.approx(1.3)
    assert world.containers["culture"].volume_ml == pytest.approx(culture_ml - 2.0)
    assert world.containers["qc-1"].viable_cells > 0
    assert set(lh.in_doubt.containers()) == {"culture", "qc-1"}
    with pytest.raises(TransferOutcomeUnknownError, match="dispense"):
        await SimLiquidHandler(world, backend=FailingBackend(fail_on_dispense=1)).transfer(
            "culture", "new-vial", 10
        )
    assert "new-vial" in world.containers  # placed on the deck, and it stays there


async def test_refusals_name_the_problem_and_create_nothing() -> None:
    world = line_world()
    lh = SimLiquidHandler(world)
    with pytest.raises(OutOfRangeError, match="limit 0 µL"):
        await lh.transfer("culture", "count-vial-1", 0)
    with pytest.raises(OutOfRangeError, match=r"above what 'culture' holds"):
        await lh.transfer("culture", "count-vial-1", 250_000)
    with pytest.raises(OutOfRangeError, match="room left in 'count-vial-1'"):
        await lh.transfer("culture", "count-vial-1", 60_000)  # a 50 mL tube
    with pytest.raises(InstrumentError, match=r"no container 'bag-x' .*known: culture"):
        await lh.transfer("bag-x", "count-vial-1", 10)
    assert set(world.containers) == {"culture"}
    assert world.containers["culture"].volume_ml == 200.0


async def test_disconnect_fails_queries_too() -> None:
    lh = SimLiquidHandler(line_world())
    lh.inject(Disconnect(duration_h=1))
    with pytest.raises(InstrumentError, match="no answer to volume"):
        await lh.volume("culture")


async def test_the_journal_records_source_and_destination_ids(
    db_location: Location, tmp_path: Path
) -> None:
    world = line_world()

    async def only(run: Run, liquid_handler: LiquidHandler) -> None:
        await liquid_handler.transfer("culture", "count-vial-1", 500)
        await liquid_handler.aliquot("culture", ["qc-1", "qc-2"], 200)

    protocol = Protocol("sampling", version="1")
    protocol.step(name="only")(only)
    with Journal(db_location) as journal:
        outcome = await Runner(journal, clock_origin=ORIGIN).run(
            protocol, Line("t", {"liquid_handler": SimLiquidHandler(world)}, simulated=True)
        )
        assert outcome.exit_status == "complete", outcome.reason
        records = journal.records(outcome.run_id)
    commands = [r.payload for r in records if r.kind == "instrument_command"]
    assert commands[0].arguments == {
        "source_container_id": "culture",
        "destination_container_id": "count-vial-1",
        "volume_ul": 500,
    }
    assert commands[1].arguments["destination_container_ids"] == ["qc-1", "qc-2"]
    responses = [r.payload for r in records if r.kind == "instrument_response"]
    assert responses[0].ok and responses[0].result["destination_container_id"] == ("count-vial-1")
    assert [t["destination_container_id"] for t in responses[1].result] == ["qc-1", "qc-2"]
    assert responses[1].result[0]["source_container_id"] == "culture"


async def test_the_runner_records_a_transfer_of_unknown_outcome_as_in_doubt(
    db_location: Location,
    tmp_path: Path,
) -> None:
    world = line_world()
    lh = SimLiquidHandler(world, backend=FailingBackend(fail_on_dispense=2))

    async def sample(run: Run, liquid_handler: LiquidHandler) -> None:
        await liquid_handler.transfer("culture", "qc-1", 1500)

    protocol = Protocol("sampling", version="1")
    protocol.step(name="sample")(sample)
    with Journal(db_location) as journal:
        outcome = await Runner(journal, clock_origin=ORIGIN).run(
            protocol, Line("t", {"liquid_handler": lh}, simulated=True)
        )
        records = journal.records(outcome.run_id)
    assert outcome.exit_status == "failed"
    assert "TransferOutcomeUnknownError" in outcome.reason
    (response,) = [r.payload for r in records if r.kind == "instrument_response"]
    assert not response.ok and response.outcome_unknown  # in doubt, not "it failed"
    assert response.error.type == "TransferOutcomeUnknownError"
    assert "Nothing was rolled back" in response.error.message
    assert any("outcome is unknown" in r.payload.message for r in records if r.kind == "alarm")
    assert world.containers["qc-1"].volume_ml == pytest.approx(1.0)  # cycle 1 happened
