"""Outages: a server restart mid-run is a recorded gap; a lost reply starts nothing twice."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from cellauto.instruments.bioreactor import Setpoints
from cellauto.instruments.cell_processor import ProgramInputs
from cellauto.instruments.opcua import (
    OpcUaBioreactor,
    OpcUaCellProcessor,
    OpcUaDisconnectedError,
)
from cellauto.sim.opcua import BioreactorServer, serve_processor
from tests.wire.test_opcua_support import leftover_tasks, make_bioreactor, make_processor

pytestmark = pytest.mark.anyio


async def test_a_server_restart_mid_run_is_a_gap_and_the_run_continues() -> None:
    sim = make_bioreactor()
    clock = sim.world.clock
    gaps: list[tuple[float, float, str]] = []
    server = BioreactorServer(sim, sample_interval_s=None)
    await server.start()
    adapter = await OpcUaBioreactor.connect(
        server.url, clock=clock, max_age_s=0.0, on_gap=lambda *gap: gaps.append(gap),
        reconnect_max_delay_s=5.0,
    )  # fmt: skip
    restarted: BioreactorServer | None = None
    try:
        await adapter.set_setpoints(Setpoints(temperature_c=37.0))
        await adapter.seed("APH-1", volume_ml=50.0, medium_ml=400.0)
        fed: list[Any] = []

        async def feed() -> None:  # 300 s on the device; the server goes away meanwhile
            fed.append(await adapter.feed(100.0))

        async with anyio.create_task_group() as group:
            group.start_soon(feed)
            await anyio.sleep(60.0)
            await server.stop()
            stopped_at = clock.now_s()
            await anyio.sleep(1.0)
            asked_at = anyio.current_time()
            with pytest.raises(OpcUaDisconnectedError, match="disconnected; reconnecting"):
                await adapter.read_process_values()
            assert anyio.current_time() - asked_at < 0.5  # at once, nothing sent
            await anyio.sleep(600.0)  # the feed ends on the device during the outage
            assert not fed
            restarted = BioreactorServer(sim, sample_interval_s=None, port=server.port)
            await restarted.start()
            restarted_at = clock.now_s()
        # the feed's outcome was collected after the reconnect, not repeated
        assert fed[0].culture_volume_ml == 550.0
        assert sim.culture is not None and sim.culture.cells.volume_ml == 550.0
        assert len(gaps) == 1 and adapter.gaps[0].started_process_time_s == gaps[0][0]
        started, ended, reason = gaps[0]
        assert started == pytest.approx(stopped_at, abs=1.0)
        assert restarted_at <= ended <= restarted_at + 10.0  # within one backoff step
        assert reason
        values = await adapter.read_process_values()
        assert values.culture_volume_ml == 550.0 and values.process_time_s > ended
        assert (await adapter.draw_sample(1.0)).volume_ml == 1.0
    finally:
        await adapter.aclose()
        if restarted is not None:
            await restarted.stop()
    await anyio.sleep(700.0)  # the first feed's bookkeeping is over too
    assert leftover_tasks() == []


async def test_a_lost_reply_to_start_program_returns_the_same_run_id() -> None:
    sim = make_processor()
    async with serve_processor(sim) as server:
        adapter = await OpcUaCellProcessor.connect(server.url, clock=sim.world.clock)
        async with adapter:
            received: list[str] = []
            plain_start = sim.start_program

            async def start_then_cut(*args: Any) -> str:
                run_id = await plain_start(*args)
                received.append(run_id)
                if len(received) == 1:  # the device started it; the reply never arrives
                    assert server.drop_connections() == 1
                return run_id

            sim.start_program = start_then_cut  # type: ignore[method-assign]
            inputs = ProgramInputs(source_container_id="APH-1", output_container_id="ENR-1")
            run_id = await adapter.start_program("CD4CD8_ENRICHMENT", inputs, "batch-7/enrich")
            assert received == [run_id, run_id]  # sent again after the reconnect
            assert len(sim._runs) == 1  # started once
            assert len(adapter.gaps) == 1
            # a caller retrying after a lost reply gets the same id as well
            again = await adapter.start_program("CD4CD8_ENRICHMENT", inputs, "batch-7/enrich")
            assert again == run_id and len(sim._runs) == 1
            status = await adapter.program_status(run_id)
            assert status.state == "running" and status.supervisory_task_id == "batch-7/enrich"
    assert leftover_tasks() == []
