"""``cellauto sim serve lines/sim-opcua.toml``: a plain asyncua client in another process
reads good values from every served OPC UA instrument at once and later (issue 9)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from asyncua import Client, ua

from cellauto.instruments.opcua.lads import CELLAUTO_URI
from tests.wire.test_opcua_support import variables_below

ROOT = Path(__file__).resolve().parents[2]
OPCUA_LINE = ROOT / "lines" / "sim-opcua.toml"
_FUNCTIONS = "bioreactor/FunctionalUnitSet/Unit1/FunctionSet"


async def _read(url: str, device: str) -> tuple[dict[str, str], float]:
    """(bad statuses by NodeId, the bioreactor's temperature CurrentValue or NaN)."""
    async with Client(url, timeout=10) as client:
        own = (await client.get_namespace_array()).index(CELLAUTO_URI)
        variables = await variables_below(client.get_node(ua.NodeId(device, own)))
        values = await client.read_attributes(variables, ua.AttributeIds.Value)
        bad = {
            v.nodeid.to_string(): value.StatusCode.name
            for v, value in zip(variables, values, strict=True)
            if not value.StatusCode.is_good()
        }
        temperature = float("nan")
        if device == "bioreactor":
            node = client.get_node(
                ua.NodeId(f"{_FUNCTIONS}/TemperatureController/CurrentValue", own)
            )
            temperature = await node.read_value()
        return bad, temperature


def test_a_plain_client_reads_good_values_from_every_served_opcua_instrument() -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "cellauto", "sim", "serve", str(OPCUA_LINE), "--speed", "60",
         "--for-s", "120"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        endpoints = json.loads(server.stdout.readline())["endpoints"]
        for device in ("bioreactor", "processor"):
            bad, temperature = anyio.run(_read, endpoints[device], device)
            assert bad == {}, device
            if device == "bioreactor":
                assert temperature == pytest.approx(20.0)
        bad, _ = anyio.run(_read, endpoints["bioreactor"], "bioreactor")  # later, still good
        assert bad == {}
    finally:
        server.terminate()
        server.wait(timeout=30)
