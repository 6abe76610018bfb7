"""A line file ties an instrument to its equipment registry asset (``asset = "BR-001"``)."""

from __future__ import annotations

from contextlib import AsyncExitStack

import pytest
from pydantic import ValidationError

from cellauto.clock import Clock
from cellauto.instruments import CellCounter
from cellauto.lines import EquipmentConfig, LineConfig
from cellauto.lines.wire import open_line
from cellauto.sim import SimLine
from cellauto.sim.simulate import DEFAULT_SIM_START


def test_an_asset_tag_is_checked() -> None:
    assert EquipmentConfig(adapter="sim", asset="BR-001").asset == "BR-001"
    assert EquipmentConfig(adapter="sim").asset is None
    with pytest.raises(ValidationError, match="asset"):
        EquipmentConfig(adapter="sim", asset="BR 001")


@pytest.mark.anyio
async def test_the_line_carries_the_assets_of_its_file() -> None:
    config = LineConfig.model_validate(
        {
            "name": "suite-3",
            "equipment": {
                "counter": {"adapter": "sim", "asset": "CC-100"},
                "scanner": {"adapter": "sim"},
            },
            "simulation": {"serve": True},
        }
    )
    sim = SimLine(clock=Clock(DEFAULT_SIM_START), seed=1)
    async with AsyncExitStack() as stack:
        line = await open_line(config, {"counter": CellCounter}, stack, sim=sim)
    assert line.assets == {"counter": "CC-100"}
