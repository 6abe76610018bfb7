"""A plain asyncua client finds the LADS structure of the simulated devices and uses it."""

from __future__ import annotations

import anyio
import pytest
from asyncua import Client, ua

from cellauto.instruments.opcua.lads import CELLAUTO_URI, DI_URI, LADS_URI, unece_unit_id
from cellauto.sim.opcua import serve_bioreactor, serve_processor
from tests.wire.test_opcua_support import (
    leftover_tasks,
    make_bioreactor,
    make_processor,
    plain_client,
)

pytestmark = pytest.mark.anyio


async def _namespaces(client: Client) -> tuple[int, int, int]:
    names = await client.get_namespace_array()
    return names.index(CELLAUTO_URI), names.index(DI_URI), names.index(LADS_URI)


def test_unit_ids_follow_the_unece_codes_of_the_bpc_model() -> None:
    assert unece_unit_id("CEL") == 4408652  # °C in Eppendorf's BPC nodeset
    assert unece_unit_id("RPM") == 5394509
    assert unece_unit_id("P1") == 20529


async def test_a_plain_client_browses_reads_and_writes_the_bioreactor() -> None:
    sim = make_bioreactor()
    async with serve_bioreactor(sim) as server, plain_client(server.url) as client:
        own, di, lads = await _namespaces(client)
        assert own == 2
        device_set = await client.nodes.objects.get_child(f"{di}:DeviceSet")
        (device,) = [d for d in await device_set.get_children() if d.nodeid.NamespaceIndex == own]
        assert device.nodeid == ua.NodeId("bioreactor", own)
        serial = await device.get_child(f"{di}:SerialNumber")
        assert await serial.read_value() == "BR-0001"
        controller = await device.get_child(
            [
                f"{lads}:FunctionalUnitSet",
                f"{own}:Unit1",
                f"{lads}:FunctionSet",
                f"{own}:TemperatureController",
            ]
        )
        base = "bioreactor/FunctionalUnitSet/Unit1/FunctionSet/TemperatureController"
        assert controller.nodeid == ua.NodeId(base, own)
        current = await controller.get_child(f"{lads}:CurrentValue")
        target = await controller.get_child(f"{lads}:TargetValue")
        assert target.nodeid == ua.NodeId(f"{base}/TargetValue", own)
        functions = await (await controller.get_parent()).get_children()
        names = {(await f.read_browse_name()).Name for f in functions}
        assert {"pHController", "DOController", "RockerController", "PerfusionPump"} <= names
        unit = await (await controller.get_parent()).get_parent()
        manager = await unit.get_child(f"{lads}:ProgramManager")
        for part in ("ProgramTemplateSet", "ActiveProgram", "ResultSet"):
            await manager.get_child(f"{lads}:{part}")
        assert await current.read_value() == pytest.approx(20.0, abs=0.5)
        units = await (await current.get_child("0:EngineeringUnits")).read_value()
        assert (units.UnitId, units.DisplayName.Text) == (unece_unit_id("CEL"), "°C")
        eu_range = await (await target.get_child("0:EURange")).read_value()
        assert (eu_range.Low, eu_range.High) == (4.0, 40.0)

        await target.write_value(37.0)
        with pytest.raises(ua.uaerrors.BadOutOfRange):
            await target.write_value(45.0)
        await anyio.sleep(2.0)  # the controller takes 1 s to apply a setpoint
        assert sim.setpoints.temperature_c == 37.0
        assert await target.read_value() == 37.0


async def test_a_plain_client_starts_a_program_and_finds_its_result() -> None:
    sim = make_processor()
    async with serve_processor(sim) as server, plain_client(server.url) as client:
        own, _, lads = await _namespaces(client)
        await client.load_data_type_definitions()  # KeyValueType, SampleInfoType
        unit = client.get_node(ua.NodeId("processor/FunctionalUnitSet/Unit1", own))
        state = await unit.get_child(f"{lads}:FunctionalUnitState")
        start = await state.get_child(f"{lads}:StartProgram")
        arguments = await (await start.get_child("0:InputArguments")).read_value()
        assert [a.Name for a in arguments] == [
            "ProgramTemplateId",
            "Properties",
            "SupervisoryJobId",
            "SupervisoryTaskId",
            "Samples",
        ]
        manager = await unit.get_child(f"{lads}:ProgramManager")
        templates = await (await manager.get_child(f"{lads}:ProgramTemplateSet")).get_children()
        assert "CD4CD8_ENRICHMENT" in {(await t.read_browse_name()).Name for t in templates}

        properties = [
            ua.KeyValueType(Key="SourceContainerId", Value="APH-1"),
            ua.KeyValueType(Key="OutputContainerId", Value="ENR-1"),
        ]
        samples = [ua.SampleInfoType(ContainerId="APH-1", SampleId="", Position="", CustomData="")]
        args = ("CD4CD8_ENRICHMENT", properties, "batch-7", "task-1", samples)
        run_id = await state.call_method(start, *args)
        assert run_id == "CP-0001-RUN0001"
        assert await state.call_method(start, *args) == run_id  # same task: same run
        assert len(sim._runs) == 1
        current = await state.get_child("0:CurrentState")
        assert (await current.read_value()).Text == "Running"
        active = await manager.get_child(f"{lads}:ActiveProgram")
        run = await active.get_child(f"{lads}:DeviceProgramRunId")
        assert await run.read_value() == run_id

        with pytest.raises(ua.uaerrors.BadInvalidState):  # one program at a time
            await state.call_method(start, "CD3_ENRICHMENT", properties, "", "t-2", samples)
        await anyio.sleep(5 * 3600)
        assert (await current.read_value()).Text == "Stopped"
        result_set = await manager.get_child(f"{lads}:ResultSet")
        (result,) = await result_set.get_children()
        task = await result.get_child(f"{lads}:SupervisoryTaskId")
        assert await task.read_value() == "task-1"
        stored = await (await result.get_child(f"{lads}:Properties")).read_value()
        assert [(p.Key, p.Value) for p in stored] == [
            ("SourceContainerId", "APH-1"),
            ("OutputContainerId", "ENR-1"),
        ]
    assert leftover_tasks() == []


async def test_a_refused_command_carries_the_instruments_message() -> None:
    sim = make_bioreactor()
    async with (
        serve_bioreactor(sim, sample_interval_s=None) as server,
        plain_client(server.url) as client,
    ):
        own, _, _ = await _namespaces(client)
        commands = ua.NodeId("bioreactor/FunctionalUnitSet/Unit1/Commands", own)
        seed = ua.NodeId("bioreactor/FunctionalUnitSet/Unit1/Commands/Seed", own)
        args = [ua.Variant(v) for v in ("op-1", "NO-SUCH-BAG", 10.0, 100.0)]
        request = ua.CallMethodRequest(ObjectId=commands, MethodId=seed, InputArguments=args)
        (result,) = await client.uaclient.call([request])
        assert result.StatusCode.value == ua.StatusCodes.BadInvalidState
        message = result.InputArgumentDiagnosticInfos[0].AdditionalInfo
        assert message == "Bioreactor BR-0001: no container 'NO-SUCH-BAG' on the line; known: APH-1"
        # before the first sample the CurrentValues show the noise-free setpoint state
        current = client.get_node(
            ua.NodeId(
                "bioreactor/FunctionalUnitSet/Unit1/FunctionSet/pHController/CurrentValue", own
            )
        )
        assert await current.read_value() == 7.2


@pytest.mark.parametrize("device", ["bioreactor", "processor"])
async def test_every_served_node_has_a_display_name(device: str) -> None:
    """A browsing client (UaExpert, a plant's SCADA) shows names, not blanks."""
    serve, make = (
        (serve_bioreactor, make_bioreactor)
        if device == "bioreactor"
        else (serve_processor, make_processor)
    )
    async with serve(make()) as server, plain_client(server.url) as client:
        own, di, _ = await _namespaces(client)
        device_set = await client.nodes.objects.get_child(f"{di}:DeviceSet")
        blank: list[str] = []
        seen = 0
        pending = list(await device_set.get_children())
        while pending:
            node = pending.pop()
            if node.nodeid.NamespaceIndex != own:
                continue
            seen += 1
            if not (await node.read_display_name()).Text:
                blank.append(node.nodeid.Identifier)
            pending.extend(await node.get_children())
        assert seen > 20 and blank == []
        unit = client.get_node(ua.NodeId(f"{device}/FunctionalUnitSet/Unit1", own))
        assert (await unit.read_display_name()).Text == "Unit1"  # the browse name
