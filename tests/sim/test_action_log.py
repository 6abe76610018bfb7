"""ActionLog: what served simulated instruments physically did, one JSON line each."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from cellauto.clock import Clock
from cellauto.errors import InstrumentError
from cellauto.instruments.cryo_storage import StoragePosition
from cellauto.sim.action_log import ActionLog, read_actions
from cellauto.sim.material import Container
from cellauto.sim.storage import SimCryoStorage
from cellauto.sim.world import SimWorld

pytestmark = pytest.mark.anyio

ORIGIN = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


async def test_each_physical_action_is_one_line_with_its_arguments(tmp_path: Path) -> None:
    world = SimWorld(Clock(ORIGIN), seed=1)
    world.add_container(Container("bag 1", viable_cells=1e8, dead_cells=5e6, volume_ml=20))
    storage = SimCryoStorage(world)
    path = tmp_path / "actions.jsonl"
    position = StoragePosition(rack="A", box=1, slot=1)
    with ActionLog(path, world.clock).watch({"storage": storage}):
        await storage.store("bag 1", position)
        await storage.inventory()  # a query: no physical action
        with pytest.raises(InstrumentError):
            await storage.store("bag 1", position)  # refused, but attempted
    await storage.retrieve("bag 1")  # after the log closed: not watched any more
    actions = read_actions(path)
    assert [(a.seq, a.instrument, a.method, a.ok) for a in actions] == [
        (1, "storage", "store", True),
        (2, "storage", "store", False),
    ]
    assert actions[0].arguments == {
        "container_id": "bag 1",
        "position": position.model_dump(mode="json"),
    }
    assert actions[0].process_time_s == pytest.approx(ORIGIN.timestamp())
    assert "store" not in storage.__dict__  # the instance is as it was


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "actions.jsonl"
    path.write_text(
        '{"seq":1,"instrument":"f","method":"start","arguments":{},"process_time_s":0,"ok":true}\n'
        '{"seq":2,"instr'
    )
    assert [a.seq for a in read_actions(path)] == [1]


async def test_a_command_the_instrument_recognises_as_done_is_logged_as_a_repeat(
    tmp_path: Path,
) -> None:
    from tests.sim.test_processor import inputs, make

    _world, processor, _bag = make()
    path = tmp_path / "actions.jsonl"
    with ActionLog(path, processor.world.clock).watch({"processor": processor}):
        first = await processor.start_program("CD4CD8_ENRICHMENT", inputs(), "task 1")
        again = await processor.start_program("CD4CD8_ENRICHMENT", inputs(), "task 1")
    assert again == first
    actions = read_actions(path)
    assert [a.repeat_of for a in actions] == [
        None,
        f"program run {first}, started for this supervisory task",
    ]
