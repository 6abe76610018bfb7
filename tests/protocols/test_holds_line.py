"""A line file marks an instrument shared: ``shared = {capacity = 1, max_hold_min = 15}``."""

from __future__ import annotations

from contextlib import AsyncExitStack

import pytest
from pydantic import ValidationError

from cellauto.clock import Clock
from cellauto.instruments import CellCounter, FlowCytometer
from cellauto.lines import EquipmentConfig, LineConfig, SharedConfig
from cellauto.lines.wire import open_line
from cellauto.protocols.holds import SharedPolicy, policy_of
from cellauto.sim import SimLine
from cellauto.sim.simulate import DEFAULT_SIM_START


def test_a_shared_table_is_checked() -> None:
    item = EquipmentConfig.model_validate(
        {"adapter": "sim", "shared": {"capacity": 2, "max_hold_min": 15}}
    )
    assert item.shared == SharedConfig(capacity=2, max_hold_min=15)
    assert EquipmentConfig(adapter="sim").shared is None
    with pytest.raises(ValidationError, match="capacity"):
        EquipmentConfig.model_validate({"adapter": "sim", "shared": {"capacity": 0}})
    with pytest.raises(ValidationError, match="extra"):
        EquipmentConfig.model_validate({"adapter": "sim", "shared": {"max_hold": 3}})


@pytest.mark.anyio
async def test_the_line_shares_what_its_file_marks_shared() -> None:
    config = LineConfig.model_validate(
        {
            "name": "suite-3",
            "equipment": {
                "counter": {
                    "adapter": "sim",
                    "asset": "CC-100",
                    "shared": {"max_hold_min": 15, "patience_min": 30},
                },
                "cytometer": {"adapter": "sim", "shared": {"sample_stability_min": None}},
            },
            "simulation": {"serve": True},
        }
    )
    sim = SimLine(clock=Clock(DEFAULT_SIM_START), seed=1)
    async with AsyncExitStack() as stack:
        line = await open_line(
            config, {"counter": CellCounter, "cytometer": FlowCytometer}, stack, sim=sim
        )
    assert policy_of(line.equipment["counter"]) == SharedPolicy(
        "CC-100", max_hold_s=900, patience_s=1800
    )
    assert policy_of(line.equipment["cytometer"]) == SharedPolicy(
        "suite-3:cytometer", sample_stability_s=None
    )


@pytest.mark.anyio
async def test_equipment_not_marked_shared_is_dedicated() -> None:
    config = LineConfig.model_validate(
        {"name": "suite-3", "equipment": {"counter": {"adapter": "sim"}}, "simulation": {}}
    )
    sim = SimLine(clock=Clock(DEFAULT_SIM_START), seed=1)
    async with AsyncExitStack() as stack:
        line = await open_line(config, {"counter": CellCounter}, stack, sim=sim)
    assert policy_of(line.equipment["counter"]) is None
