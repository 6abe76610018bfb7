"""A liquid handler served by ``sim serve`` (PyLabRobot over TCP): served beside the SCPI
and OPC UA instruments, and its dispenses in the action log (the crash drill's evidence)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cellauto.cli.sim_cmd import _needed
from cellauto.clock import Clock
from cellauto.instruments.liquid_handler import LiquidHandler
from cellauto.instruments.plr import TcpPlrLiquidHandler, TcpSerializingBackend
from cellauto.instruments.thawer import Thawer
from cellauto.lines import load_line_config
from cellauto.sim.action_log import ActionLog, read_actions
from cellauto.sim.liquid_handler import SimLiquidHandler
from cellauto.sim.material import Container
from cellauto.sim.plr_actions import log_dispenses
from cellauto.sim.plr_server import serve_plr
from cellauto.sim.world import SimWorld
from tests.wire.scpi_support import ORIGIN

pytestmark = pytest.mark.anyio
LINES = Path(__file__).resolve().parents[2] / "lines"


async def test_each_dispense_of_a_served_liquid_handler_is_a_logged_action(
    tmp_path: Path,
) -> None:
    world = SimWorld(Clock(ORIGIN), seed=1)
    world.add_container(Container("bag", viable_cells=9e8, volume_ml=70.0, dmso_pct=7.5))
    handler = SimLiquidHandler(world)
    actions = ActionLog(tmp_path / "actions.jsonl", world.clock)
    with actions.watch({"liquid_handler": handler}):
        async with serve_plr(handler) as server:
            log_dispenses(server, actions, "liquid_handler")
            backend = TcpSerializingBackend("127.0.0.1", server.port)
            adapter = TcpPlrLiquidHandler(backend)
            await adapter.transfer("bag", "QC sample", 1_500)
            await adapter.aliquot("QC sample", ["count 1", "release plate:A1"], 200)
            await adapter.stop()
    logged = [(a.method, a.arguments, a.ok) for a in read_actions(tmp_path / "actions.jsonl")]
    assert logged == [
        ("dispense", {"destination": "QC sample", "volume_ul": 1000.0}, True),
        ("dispense", {"destination": "QC sample", "volume_ul": 500.0}, True),
        ("dispense", {"destination": "count 1", "volume_ul": 200.0}, True),
        ("dispense", {"destination": "release plate:A1", "volume_ul": 200.0}, True),
    ]


def test_sim_serve_serves_the_car_t_liquid_handler_and_thawer(tmp_path: Path) -> None:
    needed = _needed(load_line_config(LINES / "car-t-serve.toml"))
    assert needed["liquid_handler"] is LiquidHandler and needed["thawer"] is Thawer
    # a PyLabRobot liquid handler on its own simulation backend is nothing to serve
    line = tmp_path / "line.toml"
    line.write_text(
        'name = "x"\n[simulation]\n[equipment.liquid_handler]\nadapter = "pylabrobot"\n'
        'interface = "LiquidHandler"\n[equipment.thawer]\nadapter = "visa"\n'
        'interface = "Thawer"\nendpoint = "TCPIP0::127.0.0.1::0::SOCKET"\n'
    )
    assert _needed(load_line_config(line)) == {"thawer": Thawer}
