"""Pools of units in a line file (``units = {...}``): read and refused with reasons,
opened as one instrument per unit, served by ``cellauto sim serve`` one server a unit."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from cellauto.clock import Clock
from cellauto.errors import BadInputError, EquipmentError
from cellauto.instruments import Bioreactor, CellCounter
from cellauto.lines import load_line_config
from cellauto.lines.wire import open_line
from cellauto.sim.line import SimLine

POOL = """
name = "pool-line"

[simulation]
seed = 3

[equipment.counter]
adapter = "visa"
interface = "CellCounter"
endpoint = "TCPIP0::127.0.0.1::0::SOCKET"

[equipment.bioreactor]
adapter = "opcua"
interface = "Bioreactor"
units = { "BR-01" = "opc.tcp://127.0.0.1:0/cellauto/bioreactor", "BR-02" = { endpoint = "opc.tcp://127.0.0.1:0/cellauto/bioreactor", asset = "BR-0002" } }
"""  # noqa: E501


def write(tmp_path: Path, text: str, name: str = "line.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_pool_is_read_with_each_units_endpoint_and_asset_tag(tmp_path: Path) -> None:
    line = load_line_config(write(tmp_path, POOL))
    assert list(line.pools) == ["bioreactor"]
    units = line.equipment["bioreactor"].unit_configs()
    assert {name: (u.endpoint, u.asset, u.adapter) for name, u in units.items()} == {
        "BR-01": ("opc.tcp://127.0.0.1:0/cellauto/bioreactor", "BR-01", "opcua"),
        "BR-02": ("opc.tcp://127.0.0.1:0/cellauto/bioreactor", "BR-0002", "opcua"),
    }
    text = 'name = "s"\n[equipment.bioreactor]\nadapter = "sim"\nunits = ["BR-01", "BR-02"]\n'
    units = load_line_config(write(tmp_path, text)).equipment["bioreactor"].unit_configs()
    assert {name: u.endpoint for name, u in units.items()} == {"BR-01": None, "BR-02": None}


UNITS = 'units = { "BR-01" = "opc.tcp://10.0.0.1:4840", "BR-02" = "opc.tcp://10.0.0.2:4840" }'


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (f'{UNITS}\nendpoint = "opc.tcp://10.0.0.9:4840"', "has no `endpoint`: each unit"),
        (f"{UNITS}\nshared = {{ capacity = 2 }}", "cannot be `shared`"),
        (f'{UNITS}\nasset = "BR-000"', "has no `asset`: give each unit its own"),
        ("units = {}", "needs at least one unit"),
        ('units = { "BR 01" = "opc.tcp://10.0.0.1:4840" }', "unit names ['BR 01'] must be tags"),
        (
            'units = { "A" = { endpoint = "opc.tcp://10.0.0.1:4840", asset = "X" },'
            ' "B" = { endpoint = "opc.tcp://10.0.0.2:4840", asset = "X" } }',
            "share the asset tag X",
        ),
        (
            'units = { "A" = "opc.tcp://10.0.0.1:4840", "B" = "opc.tcp://10.0.0.1:4840" }',
            "share the endpoint opc.tcp://10.0.0.1:4840",
        ),
        ('units = { "A" = "opc.tcp://10.0.0.1:4840", "B" = {} }', "units ['B'] have no endpoint"),
    ],
)
def test_a_pool_that_cannot_be_is_refused_with_the_reason(
    tmp_path: Path, extra: str, message: str
) -> None:
    text = f'name = "x"\n[equipment.bioreactor]\nadapter = "opcua"\n{extra}\n'
    with pytest.raises(BadInputError, match=r"equipment\.bioreactor") as refused:
        load_line_config(write(tmp_path, text))
    assert message in str(refused.value)


@pytest.mark.anyio
async def test_a_simulated_pool_opens_one_instrument_per_unit(tmp_path: Path) -> None:
    text = (
        'name = "sim-pool"\n[simulation]\nserve = true\n'
        '[equipment.bioreactor]\nadapter = "sim"\nunits = ["BR-01", "BR-02", "BR-03"]\n'
        '[equipment.counter]\nadapter = "sim"\n'
    )
    config = load_line_config(write(tmp_path, text))
    sim = SimLine(clock=Clock(), seed=1)
    async with AsyncExitStack() as stack:
        line = await open_line(
            config, {"bioreactor": Bioreactor, "counter": CellCounter}, stack, sim=sim
        )
    assert list(line.equipment) == ["counter"]
    serials = {unit: i.identity.serial for unit, i in line.pools["bioreactor"].items()}
    assert serials == {"BR-01": "B-BR-01", "BR-02": "B-BR-02", "BR-03": "B-BR-03"}
    view = line.with_units({"bioreactor": "BR-02"})
    assert view.equipment["bioreactor"] is line.pools["bioreactor"]["BR-02"]
    assert view.assets["bioreactor"] == "BR-02" and view.rehearsal
    with pytest.raises(EquipmentError, match=r"a pool of 3 units .* a controller binds"):
        line.provide({"bioreactor": Bioreactor}, protocol="demo")
    with pytest.raises(EquipmentError, match="no unit 'BR-09' in pool 'bioreactor'"):
        line.with_units({"bioreactor": "BR-09"})


def test_sim_serve_serves_each_unit_and_announces_its_endpoint(tmp_path: Path) -> None:
    served = write(tmp_path, POOL, "serve.toml")
    server = subprocess.Popen(
        [sys.executable, "-m", "cellauto", "sim", "serve", str(served), "--for-s", "120"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        endpoints = json.loads(server.stdout.readline())["endpoints"]
        pool = endpoints["bioreactor"]
        assert set(pool) == {"BR-01", "BR-02"} and pool["BR-01"] != pool["BR-02"]
        units = ", ".join(f'"{unit}" = "{where}"' for unit, where in pool.items())
        reach = POOL.split("[equipment.bioreactor]")[0].replace(
            "TCPIP0::127.0.0.1::0::SOCKET", endpoints["counter"]
        ) + ('[equipment.bioreactor]\nadapter = "opcua"\ninterface = "Bioreactor"\n')
        config = load_line_config(write(tmp_path, reach + f"units = {{ {units} }}\n"))

        async def identities() -> dict[str, tuple[str, str | None]]:
            async with AsyncExitStack() as stack:
                line = await open_line(config, {"bioreactor": Bioreactor}, stack)
                return {
                    unit: (i.identity.serial, line.unit_assets["bioreactor"][unit])
                    for unit, i in line.pools["bioreactor"].items()
                }

        assert asyncio.run(identities()) == {
            "BR-01": ("B-BR-01", "BR-01"),
            "BR-02": ("B-BR-02", "BR-02"),  # the controllers' file gives no asset tag
        }
    finally:
        server.terminate()
        server.wait(timeout=30)
