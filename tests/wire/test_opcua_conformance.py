"""Our code-built address space against the OPC Foundation's LADS 1.0 and DI nodesets.

The servers load the nodesets the package ships (``cellauto/sim/opcua/nodesets``);
here their XML is read as well: every LADS or DI browse name our simulated devices
use must be one the model defines, StartProgram's arguments must be LADS's, and so
must the state numbers and the data type ids.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from asyncua import ua

import cellauto.sim.opcua
from cellauto.instruments.opcua.lads import (
    KEY_VALUE_ENCODING_ID,
    KEY_VALUE_TYPE_ID,
    SAMPLE_INFO_ENCODING_ID,
    SAMPLE_INFO_TYPE_ID,
    FunctionalState,
)
from cellauto.sim.opcua import BioreactorServer, ProcessorServer
from tests.wire.test_opcua_support import make_bioreactor, make_processor

pytestmark = pytest.mark.anyio

NODESETS = Path(cellauto.sim.opcua.__file__).parent / "nodesets"
_NS = {"u": "http://opcfoundation.org/UA/2011/03/UANodeSet.xsd"}
_TYPES = "{http://opcfoundation.org/UA/2008/02/Types.xsd}"


def _nodes(name: str) -> list[ET.Element]:
    return list(ET.parse(NODESETS / name).getroot())


def _names(name: str, index: int) -> set[str]:
    """Browse names a nodeset defines in its own namespace (``<index>:Name``)."""
    prefix = f"{index}:"
    return {
        node.get("BrowseName", "")[len(prefix) :]
        for node in _nodes(name)
        if node.get("BrowseName", "").startswith(prefix)
    }


def _start_program_arguments() -> list[tuple[str, str, str]]:
    nodes = _nodes("Opc.Ua.LADS.NodeSet2.xml")
    method = next(n for n in nodes if n.get("NodeId") == "ns=4;i=7010")
    assert method.get("BrowseName") == "4:StartProgram"
    inputs = next(
        n
        for n in nodes
        if n.get("ParentNodeId") == "ns=4;i=7010" and "Input" in n.get("BrowseName", "")
    )
    found = []
    for argument in inputs.iter(f"{_TYPES}Argument"):
        name = argument.findtext(f"{_TYPES}Name") or ""
        data_type = argument.findtext(f"{_TYPES}DataType/{_TYPES}Identifier") or ""
        found.append((name, data_type, argument.findtext(f"{_TYPES}ValueRank") or ""))
    return found


async def _our_browse_names(server: Any) -> set[tuple[int, str]]:
    own = server.ns.own
    space = server.server.iserver.aspace
    names = set()
    for node_id in list(space.keys()):
        if node_id.NamespaceIndex == own:
            name = space.read_attribute_value(node_id, ua.AttributeIds.BrowseName).Value.Value
            names.add((name.NamespaceIndex, name.Name))
    return names


async def test_every_lads_and_di_browse_name_we_use_is_defined_by_the_models() -> None:
    lads_names = _names("Opc.Ua.LADS.NodeSet2.xml", 4)
    di_names = _names("Opc.Ua.DI.NodeSet2.xml", 1)
    for server in (BioreactorServer(make_bioreactor()), ProcessorServer(make_processor())):
        async with server:
            ours = await _our_browse_names(server)
            lads = {name for index, name in ours if index == server.ns.lads}
            di = {name for index, name in ours if index == server.ns.di}
            assert lads - lads_names == set(), "not LADS browse names"
            assert di - di_names == set(), "not DI browse names"
            assert {"FunctionalUnitSet", "FunctionalUnitState", "ProgramManager"} <= lads
            assert {"Identification", "Manufacturer", "SerialNumber"} <= di


async def test_start_program_has_the_lads_arguments() -> None:
    expected = [
        ("ProgramTemplateId", "i=12", "-1"),
        ("Properties", f"ns=4;i={KEY_VALUE_TYPE_ID}", "1"),
        ("SupervisoryJobId", "i=12", "-1"),
        ("SupervisoryTaskId", "i=12", "-1"),
        ("Samples", f"ns=4;i={SAMPLE_INFO_TYPE_ID}", "1"),
    ]
    assert _start_program_arguments() == expected
    server = ProcessorServer(make_processor())
    async with server:
        node = server.server.get_node(
            server.node_id(f"{server.paths.unit_state}/StartProgram/InputArguments")
        )
        ours = await node.read_value()
    lads = server.ns.lads
    to_ref = {ua.NodeId(12): "i=12", ua.NodeId(KEY_VALUE_TYPE_ID, lads): "ns=4;i=3003",
              ua.NodeId(SAMPLE_INFO_TYPE_ID, lads): "ns=4;i=3002"}  # fmt: skip
    assert [(a.Name, to_ref[a.DataType], str(a.ValueRank)) for a in ours] == expected


def test_data_type_ids_and_state_numbers_are_those_of_lads() -> None:
    nodes = {n.get("NodeId"): n for n in _nodes("Opc.Ua.LADS.NodeSet2.xml")}
    assert nodes[f"ns=4;i={KEY_VALUE_TYPE_ID}"].get("BrowseName") == "4:KeyValueType"
    assert nodes[f"ns=4;i={SAMPLE_INFO_TYPE_ID}"].get("BrowseName") == "4:SampleInfoType"
    for encoding in (KEY_VALUE_ENCODING_ID, SAMPLE_INFO_ENCODING_ID):
        assert nodes[f"ns=4;i={encoding}"].get("BrowseName") == "Default Binary"
    numbers = {}
    for node in nodes.values():
        typedefs = [
            r.text
            for r in node.iterfind("u:References/u:Reference", _NS)
            if r.get("ReferenceType") == "HasTypeDefinition"
        ]
        if node.get("ParentNodeId") != "ns=4;i=1038" or typedefs[:1] not in (
            ["i=2307"],
            ["i=2309"],
        ):
            continue  # not a state ((Initial)StateType) of FunctionalStateMachineType
        number = next(v for v in nodes.values() if v.get("ParentNodeId") == node.get("NodeId"))
        value = number.find("u:Value", _NS)
        assert value is not None and number.get("BrowseName") == "StateNumber"
        numbers[node.get("BrowseName", "").split(":")[-1]] = int(value[0].text or 0)
    assert numbers == {state.display_name: state.value for state in FunctionalState}
