"""PyLabRobot over TCP: the serializing backend, the simulated device, the deck in step."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cellauto.clock import Clock
from cellauto.errors import InstrumentError
from cellauto.instruments.liquid_handler import TransferOutcomeUnknownError
from cellauto.instruments.plr import TcpPlrLiquidHandler, TcpSerializingBackend
from cellauto.sim.liquid_handler import SimLiquidHandler
from cellauto.sim.material import Container
from cellauto.sim.plr_server import serve_plr
from cellauto.sim.world import SimWorld

pytestmark = pytest.mark.anyio

ORIGIN = datetime(2026, 3, 3, 8, 0, tzinfo=UTC)


def _world() -> SimWorld:
    world = SimWorld(Clock(ORIGIN), seed=1)
    world.add_container(
        Container("bag", viable_cells=9e8, dead_cells=1e8, volume_ml=70.0, dmso_pct=7.5)
    )
    return world


async def test_an_aliquot_over_tcp_moves_the_world_cells_and_tracks_tips() -> None:
    world = _world()
    handler = SimLiquidHandler(world)
    async with serve_plr(handler) as server:
        backend = TcpSerializingBackend("127.0.0.1", server.port)
        adapter = TcpPlrLiquidHandler(backend, serial=(await backend.hello())["serial"])
        assert adapter.identity.serial == handler.identity.serial
        assert adapter.identity.model == "SerializingBackend"
        moved = await adapter.transfer("bag", "QC sample", 2_500)
        assert moved.cycles == 3 and moved.source_volume_after_ul == pytest.approx(67_500)
        done = await adapter.aliquot("QC sample", ["retain 1", "retain 2"], 500)
        assert [t.destination_volume_after_ul for t in done] == [500, 500]
        assert len({tip for t in [moved, *done] for tip in t.tips_used}) == 3
        # the adapter's trackers agree with the device's deck state
        assert await adapter.containers() == pytest.approx(
            {cid: c.volume_ml * 1000 for cid, c in world.containers.items()}
        )
        await adapter.stop()
    # the world moved with the serialized operations: cells go with the volume
    assert world.containers["bag"].volume_ml == pytest.approx(67.5)
    assert world.containers["QC sample"].volume_ml == pytest.approx(1.5)
    retain = world.containers["retain 1"]
    assert retain.volume_ml == pytest.approx(0.5)
    assert retain.viable_cells == pytest.approx(9e8 * 0.5 / 70, rel=1e-9)
    assert retain.dmso_pct == pytest.approx(7.5)
    assert server.commands.count("dispense") == 5 and server.commands.count("aspirate") == 5


async def test_the_deck_follows_the_device_between_commands() -> None:
    """Volumes the device reports (a sample drawn elsewhere) are the adapter's next truth."""
    world = _world()
    async with serve_plr(SimLiquidHandler(world)) as server:
        adapter = TcpPlrLiquidHandler(TcpSerializingBackend("127.0.0.1", server.port))
        await adapter.transfer("bag", "tube", 1_000)
        world.containers["bag"].take(20.0, "drawn by the processor")
        assert await adapter.volume("bag") == pytest.approx(49_000)
        with pytest.raises(InstrumentError, match="above what 'bag' holds"):
            await adapter.transfer("bag", "tube", 60_000)
        assert world.containers["bag"].volume_ml == pytest.approx(49.0)  # refused: untouched
        await adapter.stop()


async def test_a_cut_connection_leaves_the_transfer_in_doubt() -> None:
    world = _world()
    handler = SimLiquidHandler(world)
    async with serve_plr(handler) as server:
        adapter = TcpPlrLiquidHandler(TcpSerializingBackend("127.0.0.1", server.port))
        await adapter.setup()
        original = server.apply

        async def cut(command: str, data: object) -> object:
            if command == "dispense":
                await server.close()
                raise ConnectionError("cable pulled")
            return await original(command, data)  # type: ignore[arg-type]

        server.apply = cut  # type: ignore[method-assign]
        with pytest.raises(TransferOutcomeUnknownError) as raised:
            await adapter.transfer("bag", "tube", 500)
        assert set(raised.value.in_doubt) == {"bag", "tube"}
        with pytest.raises(InstrumentError, match="state is unknown"):
            await adapter.transfer("bag", "tube", 500)
