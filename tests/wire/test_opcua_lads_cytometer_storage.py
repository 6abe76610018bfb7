"""A plain asyncua client finds the served cytometer and cryostorage and uses them."""

from __future__ import annotations

import json

import anyio
import pytest
from asyncua import Client, Node, ua

from cellauto.instruments.cryo_storage import StoredItem
from cellauto.instruments.flow_cytometer import Immunophenotype
from cellauto.instruments.opcua.lads import CELLAUTO_URI, DI_URI, LADS_URI, unece_unit_id
from cellauto.instruments.opcua.wire import OperationRecord
from cellauto.sim.opcua import serve_cytometer, serve_storage
from tests.wire.opcua_more_support import make_cytometer, make_storage
from tests.wire.test_opcua_support import leftover_tasks, plain_client

pytestmark = pytest.mark.anyio

STORAGE_UNIT = "storage/FunctionalUnitSet/Unit1"
CYTOMETER_UNIT = "cytometer/FunctionalUnitSet/Unit1"


async def _namespaces(client: Client) -> tuple[int, int, int]:
    names = await client.get_namespace_array()
    return names.index(CELLAUTO_URI), names.index(DI_URI), names.index(LADS_URI)


async def _good(client: Client, node_id: ua.NodeId) -> object:
    """The node's value, which must be Good (not waiting for initial data)."""
    data = await client.get_node(node_id).read_data_value(raise_on_bad_status=False)
    assert data.StatusCode is not None and data.StatusCode.is_good(), (node_id, data.StatusCode)
    assert data.Value is not None
    return data.Value.Value


async def _our_device(device_set: Node, own: int) -> Node:
    """The one device in DI's DeviceSet named in our namespace (DI's DeviceFeatures is
    there too)."""
    ours = [
        child
        for child in await device_set.get_children()
        if (await child.read_browse_name()).NamespaceIndex == own
    ]
    assert len(ours) == 1, ours
    return ours[0]


async def _call(
    client: Client, own: int, unit: str, method: str, *args: object
) -> ua.CallMethodResult:
    request = ua.CallMethodRequest(
        ObjectId=ua.NodeId(f"{unit}/Commands", own),
        MethodId=ua.NodeId(f"{unit}/Commands/{method}", own),
        InputArguments=[
            a if isinstance(a, ua.Variant) else ua.Variant(a)  # type: ignore[arg-type]
            for a in args
        ],
    )
    (result,) = await client.uaclient.call([request])
    return result


async def test_a_plain_client_browses_the_storage_and_reads_good_values_at_once() -> None:
    sim = make_storage()
    async with serve_storage(sim) as server, plain_client(server.url) as client:
        own, di, lads = await _namespaces(client)
        device_set = await client.nodes.objects.get_child(f"{di}:DeviceSet")
        device = await _our_device(device_set, own)
        assert device.nodeid == ua.NodeId("storage", own)
        assert (await device.read_display_name()).Text == "SimCryo VP LN2-0001"
        functions = await device.get_child(
            [f"{lads}:FunctionalUnitSet", f"{own}:Unit1", f"{lads}:FunctionSet"]
        )
        names = {(await f.read_browse_name()).Name for f in await functions.get_children()}
        assert names == {"TemperatureSensor", "LN2LevelController"}
        base = f"{STORAGE_UNIT}/FunctionSet"
        temperature = await _good(client, ua.NodeId(f"{base}/TemperatureSensor/SensorValue", own))
        level = await _good(client, ua.NodeId(f"{base}/LN2LevelController/CurrentValue", own))
        assert temperature == pytest.approx(-193.1, abs=0.5)  # the model's, without noise
        sensor = client.get_node(ua.NodeId(f"{base}/TemperatureSensor/SensorValue", own))
        stamp = (await sensor.read_data_value()).SourceTimestamp
        assert stamp is not None and stamp.timestamp() == sim.model_conditions().process_time_s
        assert level == pytest.approx(85.0)
        target = ua.NodeId(f"{base}/LN2LevelController/TargetValue", own)
        assert await _good(client, target) == 90.0
        units = client.get_node(ua.NodeId(f"{base}/TemperatureSensor/SensorValue", own))
        eu = await (await units.get_child("0:EngineeringUnits")).read_value()
        assert (eu.UnitId, eu.DisplayName.Text) == (unece_unit_id("CEL"), "°C")
        assert await _good(client, ua.NodeId(f"{base}/LN2LevelController/IsEnabled", own))
        assert await _good(client, ua.NodeId(f"{STORAGE_UNIT}/Alarm", own)) == ""
        assert await _good(client, ua.NodeId(f"{STORAGE_UNIT}/Inventory", own)) == "[]"
        state = ua.NodeId(f"{STORAGE_UNIT}/FunctionalUnitState/CurrentState", own)
        assert (await _good(client, state)).Text == "Stopped"  # type: ignore[attr-defined]
        with pytest.raises(ua.uaerrors.BadNotWritable):  # the autofill band is fixed
            await client.get_node(target).write_value(50.0)

        # a reading refreshes the published values
        await anyio.sleep(3600)
        result = await _call(client, own, STORAGE_UNIT, "ReadConditions")
        assert result.StatusCode.is_good()
        (text,) = result.OutputArguments
        reading = json.loads(text.Value)
        assert (
            await _good(client, ua.NodeId(f"{base}/LN2LevelController/CurrentValue", own))
            == (reading["ln2_level_pct"])
        )
        assert json.loads(str(await _good(client, ua.NodeId(f"{STORAGE_UNIT}/Conditions", own))))
    assert leftover_tasks() == []


async def test_a_store_is_acted_on_once_and_a_resumed_controller_can_ask_what_became_of_it() -> (
    None
):
    sim = make_storage()
    args = ("batch-7/store", "bag 1", "A", ua.Variant(1, ua.VariantType.Int32))
    args += (ua.Variant(4, ua.VariantType.Int32),)
    async with serve_storage(sim) as server:
        async with plain_client(server.url) as client:  # the controller that will crash
            own, _, _ = await _namespaces(client)
            started = await _call(client, own, STORAGE_UNIT, "Store", *args)
            assert started.StatusCode.is_good()
            state = ua.NodeId(f"{STORAGE_UNIT}/FunctionalUnitState/CurrentState", own)
            assert (await _good(client, state)).Text == "Running"  # type: ignore[attr-defined]
        await anyio.sleep(300)  # it crashed; the freezer carried on
        async with plain_client(server.url) as client:  # the resumed controller
            result = await _call(client, own, STORAGE_UNIT, "GetOperation", "batch-7/store")
            record = OperationRecord.model_validate_json(result.OutputArguments[0].Value)
            assert record.state == "complete"
            item = StoredItem.model_validate(record.result)
            assert (item.container_id, str(item.position)) == ("bag 1", "rack A box 1 slot 4")
            again = await _call(client, own, STORAGE_UNIT, "Store", *args)  # a resend
            assert again.StatusCode.is_good()
            inventory = await _good(client, ua.NodeId(f"{STORAGE_UNIT}/Inventory", own))
            assert [i["container_id"] for i in json.loads(str(inventory))] == ["bag 1"]
            other = ("batch-7/store", "bag 2", "A", *args[3:])
            reused = await _call(client, own, STORAGE_UNIT, "Store", *other)
            assert reused.StatusCode.value == ua.StatusCodes.BadInvalidState
            assert "use a new id" in reused.InputArgumentDiagnosticInfos[0].AdditionalInfo
    assert len(await sim.inventory()) == 1
    assert (
        sim.world.containers["bag 1"].history.count(
            "stored in CryoStorage LN2-0001 at rack A box 1 slot 4"
        )
        == 1
    )


async def test_a_plain_client_browses_the_cytometer_and_runs_a_panel() -> None:
    sim, sample = make_cytometer()
    async with serve_cytometer(sim) as server, plain_client(server.url) as client:
        own, di, _ = await _namespaces(client)
        device_set = await client.nodes.objects.get_child(f"{di}:DeviceSet")
        device = await _our_device(device_set, own)
        assert device.nodeid == ua.NodeId("cytometer", own)
        serial = await device.get_child(f"{di}:SerialNumber")
        assert await serial.read_value() == "FC-0001"
        templates = client.get_node(
            ua.NodeId(f"{CYTOMETER_UNIT}/ProgramManager/ProgramTemplateSet", own)
        )
        panels = [(await t.read_browse_name()).Name for t in await templates.get_children()]
        assert panels == list(sim.panels)
        first = (await templates.get_children())[0]
        duration = await first.get_child(f"{own}:TypicalDurationH")
        assert await duration.read_value() == pytest.approx(1200.0 / 3600.0)
        last = f"{CYTOMETER_UNIT}/LastResult"
        assert await _good(client, ua.NodeId(f"{last}/SampleId", own)) == ""
        assert await _good(client, ua.NodeId(f"{last}/CarPct", own)) == 0.0
        state = ua.NodeId(f"{CYTOMETER_UNIT}/FunctionalUnitState/CurrentState", own)
        assert (await _good(client, state)).Text == "Stopped"  # type: ignore[attr-defined]

        result = await _call(
            client, own, CYTOMETER_UNIT, "Immunophenotype", "op-1", sample.sample_id,
            sample.source_container_id, sample.volume_ml, sample.drawn_at_process_time_s,
            "CAR-T release", "bob",
        )  # fmt: skip
        assert result.StatusCode.is_good()
        assert (await _good(client, state)).Text == "Running"  # type: ignore[attr-defined]
        await anyio.sleep(1300)
        assert (await _good(client, state)).Text == "Stopped"  # type: ignore[attr-defined]
        assert await _good(client, ua.NodeId(f"{last}/SampleId", own)) == sample.sample_id
        phenotype = Immunophenotype.model_validate_json(
            str(await _good(client, ua.NodeId(f"{last}/ResultJson", own)))
        )
        assert phenotype.operator == "bob" and phenotype.events_acquired == 50_000
        viable = await _good(client, ua.NodeId(f"{last}/ViablePct", own))
        assert viable == phenotype.viable_pct and 85.0 < phenotype.viable_pct < 100.0

        refused = await _call(
            client, own, CYTOMETER_UNIT, "Immunophenotype", "op-2", sample.sample_id,
            sample.source_container_id, sample.volume_ml, 0.0, "NO-PANEL", "",
        )  # fmt: skip
        assert refused.StatusCode.value == ua.StatusCodes.BadInvalidState
        assert "unknown panel 'NO-PANEL'" in refused.InputArgumentDiagnosticInfos[0].AdditionalInfo
    assert leftover_tasks() == []
