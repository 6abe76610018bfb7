"""The bioreactor adapter sees a setpoint it owns changed by another client."""

from __future__ import annotations

import anyio
import pytest
from asyncua import ua

from cellauto.instruments.bioreactor import Setpoints
from cellauto.instruments.opcua import OpcUaBioreactor
from cellauto.instruments.opcua.lads import CELLAUTO_URI
from cellauto.instruments.opcua.setpoints import SetpointChange
from cellauto.sim.opcua import serve_bioreactor
from tests.wire.test_opcua_support import leftover_tasks, make_bioreactor, plain_client

pytestmark = pytest.mark.anyio

_FUNCTIONS = "bioreactor/FunctionalUnitSet/Unit1/FunctionSet"


async def test_a_change_by_another_client_is_reported_once_and_own_changes_never() -> None:
    sim = make_bioreactor()
    changes: list[SetpointChange] = []
    async with serve_bioreactor(sim, sample_interval_s=None) as server:
        adapter = await OpcUaBioreactor.connect(
            server.url, clock=sim.world.clock, max_age_s=0.0, on_setpoint_changed=changes.append
        )
        async with adapter, plain_client(server.url) as client:
            await adapter.set_setpoints(Setpoints(temperature_c=37.0, rocking_rate_rpm=10.0))
            await adapter.set_setpoints(Setpoints(temperature_c=36.5))
            await anyio.sleep(60)
            assert changes == []  # the adapter's own changes are not "behind its back"
            own = (await client.get_namespace_array()).index(CELLAUTO_URI)
            target = client.get_node(
                ua.NodeId(f"{_FUNCTIONS}/TemperatureController/TargetValue", own)
            )
            pump = client.get_node(ua.NodeId(f"{_FUNCTIONS}/PerfusionPump/TargetValue", own))
            await target.write_value(38.5)
            await pump.write_value(100.0)  # a setpoint the run never set: not its to watch
            await anyio.sleep(60)
            assert sim.setpoints.temperature_c == 38.5  # the device applied it
            (change,) = changes
            assert (change.function, change.setpoint) == ("TemperatureController", "temperature_c")
            assert (change.expected, change.found, change.restoring) == (36.5, 38.5, False)
            assert change.node == f"ns={own};s={_FUNCTIONS}/TemperatureController/TargetValue"
            assert change.process_time_s == pytest.approx(sim.world.clock.now_s() - 60, abs=2)
            await target.write_value(38.5)  # the same value again: told already
            await anyio.sleep(60)
            assert len(changes) == 1
            await adapter.set_setpoints(Setpoints(temperature_c=37.0))  # the run takes it back
            await target.write_value(30.0)
            await anyio.sleep(60)
            assert [(c.expected, c.found) for c in changes] == [(36.5, 38.5), (37.0, 30.0)]
    assert leftover_tasks() == []


async def test_restore_writes_the_adapters_value_back() -> None:
    sim = make_bioreactor()
    changes: list[SetpointChange] = []
    async with serve_bioreactor(sim, sample_interval_s=None) as server:
        adapter = await OpcUaBioreactor.connect(
            server.url, clock=sim.world.clock, max_age_s=0.0,
            on_setpoint_changed=changes.append, restore_setpoints=True,
        )  # fmt: skip
        async with adapter, plain_client(server.url) as client:
            await adapter.set_setpoints(Setpoints(ph=7.1))
            own = (await client.get_namespace_array()).index(CELLAUTO_URI)
            target = client.get_node(ua.NodeId(f"{_FUNCTIONS}/pHController/TargetValue", own))
            await target.write_value(7.4)
            await anyio.sleep(60)
            assert sim.setpoints.ph == 7.1
            assert await target.read_value() == 7.1
            assert [(c.expected, c.found, c.restoring) for c in changes] == [(7.1, 7.4, True)]
    assert leftover_tasks() == []


async def test_values_a_client_may_not_set_are_read_only() -> None:
    sim = make_bioreactor()
    async with (
        serve_bioreactor(sim, sample_interval_s=None) as server,
        plain_client(server.url) as client,
    ):
        own = (await client.get_namespace_array()).index(CELLAUTO_URI)
        controller = f"{_FUNCTIONS}/TemperatureController"
        read_write = ua.AccessLevel.CurrentRead.mask | ua.AccessLevel.CurrentWrite.mask
        for name, levels in (
            ("CurrentValue", ua.AccessLevel.CurrentRead.mask),
            ("TargetValue", read_write),
        ):
            node = client.get_node(ua.NodeId(f"{controller}/{name}", own))
            access = await node.read_attribute(ua.AttributeIds.AccessLevel)
            user_access = await node.read_attribute(ua.AttributeIds.UserAccessLevel)
            assert (access.Value.Value, user_access.Value.Value) == (levels, levels), name
        current = client.get_node(ua.NodeId(f"{controller}/CurrentValue", own))
        sensor = client.get_node(ua.NodeId(f"{_FUNCTIONS}/GlucoseSensor/SensorValue", own))
        for node in (current, sensor):
            with pytest.raises(ua.uaerrors.BadNotWritable):
                await node.write_value(39.0)
        assert await current.read_value() == pytest.approx(20.0)
        assert sim.setpoints.temperature_c == 20.0
