"""Network timeouts are real seconds on a scaled clock (issue 9, item 3).

On a :class:`~cellauto.clock.ScaledTimeEventLoop` at scale 3600 a loop second is 0.28 ms
of real time. Before, the adapter's 10 s request timeout lapsed after 2.8 ms real: a
server answering in 50 ms was "not answering". Now every timeout, keep-alive and
back-off is real seconds: it lasts ``timeout_s * scale`` on the loop's clock.
"""

from __future__ import annotations

import anyio
import pytest

from cellauto._compat import asyncua as asyncua_compat
from cellauto.clock import Clock, real_seconds, scaled_loop_factory
from cellauto.errors import InstrumentError
from cellauto.instruments.opcua import OpcUaBioreactor
from cellauto.sim.bioreactor import SimBioreactor
from cellauto.sim.opcua import serve_bioreactor
from cellauto.sim.world import SimWorld
from tests.wire.delay_proxy import DelayProxy

pytestmark = pytest.mark.anyio

SCALE = 3600.0


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, object]]:
    return ("asyncio", {"loop_factory": scaled_loop_factory(SCALE)})


async def test_real_seconds_are_scaled_on_a_scaled_loop() -> None:
    assert real_seconds(10.0) == 10.0 * SCALE


async def test_a_reply_delayed_50_ms_real_is_no_timeout_at_scale_3600() -> None:
    sim = SimBioreactor(SimWorld(Clock(), seed=3))
    async with serve_bioreactor(sim, sample_interval_s=None) as server:
        with DelayProxy(server.port, delay_s=0.05) as proxy:
            url = server.url.replace(f":{server.port}/", f":{proxy.port}/")
            adapter = await OpcUaBioreactor.connect(
                url, clock=sim.world.clock, max_age_s=0.0, timeout_s=10.0
            )
            async with adapter:
                values = await adapter.read_process_values()
                assert values.temperature_c == pytest.approx(
                    sim.setpoints.temperature_c or 20.0, abs=5
                )
                client = adapter._link.conn.client
                # asyncua's own settings keep their real meaning (and what goes on the wire)
                assert client.uaclient._timeout == 10.0
                assert client._watchdog_intervall == 1.0
                assert asyncua_compat.real_time_timers_in_use()
                assert not adapter.gaps


async def test_a_server_that_never_answers_times_out_after_timeout_s_real() -> None:
    async def never_answer(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            async for _ in stream:
                pass

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    url = f"opc.tcp://127.0.0.1:{port}/cellauto/bioreactor"
    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, never_answer)
        started = anyio.current_time()
        with pytest.raises(InstrumentError) as refused:
            await OpcUaBioreactor.connect(url, clock=Clock(), timeout_s=0.5)
        waited = anyio.current_time() - started
        group.cancel_scope.cancel()
    # 0.5 s real is 1,800 s on this loop's clock; before, it lapsed after 0.5 loop seconds
    assert waited >= 0.5 * SCALE
    message = str(refused.value)
    assert f"cannot connect to {url}" in message
    assert "no answer within 0.5 s (real time)" in message


async def test_asyncuas_own_sleep_and_wait_for_last_real_seconds() -> None:
    import asyncio

    import asyncua.client.client
    import asyncua.client.ua_client

    asyncua_compat.use_real_time_timers()
    started = anyio.current_time()
    await asyncua.client.client.asyncio.sleep(0.01)  # e.g. the reconnect back-off
    assert anyio.current_time() - started >= 0.01 * SCALE
    started = anyio.current_time()
    with pytest.raises(TimeoutError):
        await asyncua.client.ua_client.wait_for(asyncio.Event().wait(), 0.01)  # a request
    assert anyio.current_time() - started >= 0.01 * SCALE
