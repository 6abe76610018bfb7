"""After a reconnect an OPC UA adapter reads the device identification again: another
device may answer behind the same endpoint (a run's step start compares it with the
equipment registry)."""

from __future__ import annotations

import anyio
import pytest

from cellauto.instruments.opcua import OpcUaBioreactor
from cellauto.sim.bioreactor import SimBioreactor
from cellauto.sim.opcua import BioreactorServer
from tests.wire.test_opcua_support import make_bioreactor

pytestmark = pytest.mark.anyio


async def test_identity_read_again_after_a_reconnect_only() -> None:
    sim = make_bioreactor()
    clock = sim.world.clock
    server = BioreactorServer(sim, sample_interval_s=None)
    await server.start()
    adapter = await OpcUaBioreactor.connect(
        server.url, clock=clock, max_age_s=0.0, reconnect_max_delay_s=5.0
    )
    other: BioreactorServer | None = None
    try:
        assert (await adapter.identity_now()).serial == "BR-0001"
        await server.stop()
        await anyio.sleep(5.0)
        swapped = SimBioreactor(sim.world, serial="BR-0999")
        other = BioreactorServer(swapped, sample_interval_s=None, port=server.port)
        await other.start()
        await anyio.sleep(30.0)  # reconnected within the backoff
        assert len(adapter.gaps) == 1
        assert adapter.identity.serial == "BR-0001"  # as read at connect, until asked
        assert (await adapter.identity_now()).serial == "BR-0999"
        assert adapter.identity.serial == "BR-0999"
    finally:
        await adapter.aclose()
        if other is not None:
            await other.stop()
