"""The served devices carry LADS type definitions from the imported nodesets."""

from __future__ import annotations

from pathlib import Path

import pytest
from asyncua import Client, ua
from asyncua.common.ua_utils import get_node_supertypes

import cellauto.sim.opcua
from cellauto.instruments.opcua.lads import CELLAUTO_URI, DI_URI, LADS_URI
from cellauto.sim.opcua import serve_bioreactor, serve_cytometer, serve_processor, serve_storage
from cellauto.sim.opcua._nodesets import NODESET_FILES
from tests.wire.opcua_more_support import make_cytometer, make_storage
from tests.wire.test_opcua_support import make_bioreactor, make_processor, plain_client

pytestmark = pytest.mark.anyio

REFERENCE = Path("/work/shared/reference/opcua-nodesets")
SHIPPED = Path(cellauto.sim.opcua.__file__).parent / "nodesets"
_UNIT = "FunctionalUnitSet/Unit1"


async def _type_of(client: Client, path: str) -> tuple[str, str]:
    """(namespace URI, browse name) of the TypeDefinition of our node ``path``."""
    names = await client.get_namespace_array()
    node = client.get_node(ua.NodeId(path, names.index(CELLAUTO_URI)))
    type_id = await node.read_type_definition()
    assert type_id is not None, path
    name = await client.get_node(type_id).read_browse_name()
    assert name.NamespaceIndex == type_id.NamespaceIndex
    return names[type_id.NamespaceIndex], name.Name


async def test_a_plain_client_finds_lads_types_on_the_bioreactor() -> None:
    async with serve_bioreactor(make_bioreactor()) as server, plain_client(server.url) as client:
        functions = f"bioreactor/{_UNIT}/FunctionSet"
        expected = {
            "bioreactor": "LADSDeviceType",
            "bioreactor/FunctionalUnitSet": "FunctionalUnitSetType",
            f"bioreactor/{_UNIT}": "FunctionalUnitType",
            f"bioreactor/{_UNIT}/FunctionalUnitState": "FunctionalUnitStateMachineType",
            "bioreactor/DeviceState": "LADSDeviceStateMachineType",
            functions: "FunctionSetType",
            f"{functions}/TemperatureController": "AnalogControlFunctionType",
            f"{functions}/PerfusionPump": "AnalogControlFunctionType",
            f"{functions}/TemperatureController/ControlFunctionState": (
                "ControlFunctionStateMachineType"
            ),
            f"{functions}/GlucoseSensor": "AnalogScalarSensorFunctionType",
            f"bioreactor/{_UNIT}/ProgramManager": "ProgramManagerType",
        }
        for path, type_name in expected.items():
            assert await _type_of(client, path) == (LADS_URI, type_name), path
        assert await _type_of(client, "bioreactor/Identification") == (
            DI_URI,
            "FunctionalGroupType",
        )
        # the device sits in DI's own DeviceSet, beside DI's DeviceFeatures
        names = await client.get_namespace_array()
        device_set = await client.nodes.objects.get_child(f"{names.index(DI_URI)}:DeviceSet")
        assert device_set.nodeid == ua.NodeId(5001, names.index(DI_URI))
        # and LADSDeviceType is a DI device type, as the model says
        lads_device = client.get_node(ua.NodeId(1002, names.index(LADS_URI)))
        supertypes = await get_node_supertypes(lads_device, skipbase=False)
        parents = [(await t.read_browse_name()).Name for t in supertypes]
        assert "DeviceType" in parents and "BaseObjectType" in parents


async def test_a_plain_client_finds_lads_types_on_the_processor() -> None:
    async with serve_processor(make_processor()) as server, plain_client(server.url) as client:
        manager = f"processor/{_UNIT}/ProgramManager"
        expected = {
            "processor": "LADSDeviceType",
            f"processor/{_UNIT}": "FunctionalUnitType",
            manager: "ProgramManagerType",
            f"{manager}/ProgramTemplateSet": "ProgramTemplateSetType",
            f"{manager}/ProgramTemplateSet/CD4CD8_ENRICHMENT": "ProgramTemplateType",
            f"{manager}/ActiveProgram": "ActiveProgramType",
            f"{manager}/ResultSet": "ResultSetType",
        }
        for path, type_name in expected.items():
            assert await _type_of(client, path) == (LADS_URI, type_name), path


async def test_a_plain_client_finds_lads_types_on_the_cytometer_and_the_storage() -> None:
    async with serve_storage(make_storage()) as server, plain_client(server.url) as client:
        functions = f"storage/{_UNIT}/FunctionSet"
        expected = {
            "storage": "LADSDeviceType",
            f"storage/{_UNIT}": "FunctionalUnitType",
            functions: "FunctionSetType",
            f"{functions}/TemperatureSensor": "AnalogScalarSensorFunctionType",
            f"{functions}/LN2LevelController": "AnalogControlFunctionType",
            f"{functions}/LN2LevelController/ControlFunctionState": (
                "ControlFunctionStateMachineType"
            ),
        }
        for path, type_name in expected.items():
            assert await _type_of(client, path) == (LADS_URI, type_name), path
    cytometer, _sample = make_cytometer()
    async with serve_cytometer(cytometer) as server, plain_client(server.url) as client:
        expected = {
            "cytometer": "LADSDeviceType",
            f"cytometer/{_UNIT}": "FunctionalUnitType",
            f"cytometer/{_UNIT}/ProgramManager": "ProgramManagerType",
        }
        for path, type_name in expected.items():
            assert await _type_of(client, path) == (LADS_URI, type_name), path


def test_the_package_ships_the_reference_nodesets_unchanged() -> None:
    for name in NODESET_FILES:
        shipped = SHIPPED / name
        assert shipped.is_file(), f"{name} is not in the package"
        reference = REFERENCE / name
        if reference.is_file():
            assert shipped.read_bytes() == reference.read_bytes(), name
