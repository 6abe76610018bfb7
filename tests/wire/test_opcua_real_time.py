"""On a real-time loop (the line) the adapter keeps asyncua's timers and still works."""

from __future__ import annotations

import time

import pytest

from cellauto.clock import Clock
from cellauto.instruments.bioreactor import Setpoints
from cellauto.instruments.opcua import OpcUaBioreactor
from cellauto.sim.bioreactor import SimBioreactor
from cellauto.sim.opcua import serve_bioreactor
from cellauto.sim.world import SimWorld

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # a plain loop: process time is wall time


async def test_a_setpoint_change_over_opcua_on_a_real_loop() -> None:
    sim = SimBioreactor(SimWorld(Clock(), seed=3))
    async with serve_bioreactor(sim, sample_interval_s=0.2) as server:
        assert not server.server.iserver.disabled_clock  # no tuning on a real loop
        adapter = await OpcUaBioreactor.connect(server.url, clock=sim.world.clock, max_age_s=5.0)
        async with adapter:
            client = adapter._link.conn.client
            assert client._watchdog_intervall == 1.0  # asyncua's keep-alive probe
            started = time.monotonic()
            applied = await adapter.set_setpoints(Setpoints(temperature_c=30.0))
            assert applied.temperature_c == 30.0
            assert 1.0 <= time.monotonic() - started < 3.0  # the controller's 1 s
            values = await adapter.read_process_values()  # a fresh sample, after the command
            assert values.process_time_s >= sim.world.clock.now_s() - 1.0
            assert values.temperature_c == pytest.approx(30.0, abs=0.5)
            assert not adapter.gaps
