"""A raw ConnectionError never escapes an OPC UA adapter (issue 9).

On main, a connection closed while the adapter resolved its nodes reached the caller as
asyncua's bare ``ConnectionError: Connection is closed`` (from ``send_request``, through
``resolve.py``); it is now the adapter's :class:`OpcUaConnectionLostError` (an
InstrumentError) naming the endpoint and what to do.
"""

from __future__ import annotations

from typing import Any

import pytest
from asyncua import Client
from asyncua.client.ua_client import UaClient

from cellauto.errors import CellautoError
from cellauto.instruments.opcua import OpcUaBioreactor, OpcUaConnectionLostError
from cellauto.sim.opcua import serve_bioreactor
from tests.wire.test_opcua_support import leftover_tasks, make_bioreactor

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("owner", "method"),
    [
        (UaClient, "browse"),
        (UaClient, "translate_browsepaths_to_nodeids"),
        (Client, "create_subscription"),
    ],
)
async def test_a_connection_closed_while_connecting_is_an_instrument_error(
    monkeypatch: pytest.MonkeyPatch, owner: type, method: str
) -> None:
    async def closed(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("Connection is closed")

    sim = make_bioreactor()
    async with serve_bioreactor(sim, sample_interval_s=None) as server:
        monkeypatch.setattr(owner, method, closed)
        with pytest.raises(CellautoError) as caught:
            await OpcUaBioreactor.connect(server.url, clock=sim.world.clock)
    assert isinstance(caught.value, OpcUaConnectionLostError)
    message = str(caught.value)
    assert server.url in message
    assert "ConnectionError: Connection is closed" in message
    assert "try again once the connection is back" in message
    assert not leftover_tasks()
