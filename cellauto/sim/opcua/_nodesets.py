"""The DI, Machinery, AMB and LADS nodesets shipped in ``nodesets/``, and their types.

The files are the OPC Foundation's, unchanged (see ``nodesets/README.md``). They are
imported with asyncua's XML import (:meth:`asyncua.Server.import_xml`) once per
process into the template address space (:mod:`._standard`) and cloned into every
server from there. What asyncua 2.1 cannot import from them is mended here:

* the LADS nodeset imports only after the DisplayName "Default JSON" is renamed
  "Default Json" (done in memory, when the file is read);
* the importer drops the DataTypeEncoding objects of LADS's ``KeyValueType`` and
  ``SampleInfoType`` (they have no parent), so the "Default Binary" encodings that
  StartProgram's arguments need are added again, with the nodeset's NodeIds.
"""

from __future__ import annotations

import logging
from importlib import resources

from asyncua import Server, ua
from asyncua.common.manage_nodes import create_encoding

from cellauto.instruments.opcua import _ua
from cellauto.instruments.opcua.lads import (
    KEY_VALUE_ENCODING_ID,
    KEY_VALUE_TYPE_ID,
    LADS_URI,
    SAMPLE_INFO_ENCODING_ID,
    SAMPLE_INFO_TYPE_ID,
)

__all__ = ["DI_TYPES", "LADS_TYPES", "NODESET_FILES", "import_nodesets", "nodeset_xml"]

log = logging.getLogger(__name__)

#: In dependency order (each requires the ones before it).
NODESET_FILES = (
    "Opc.Ua.DI.NodeSet2.xml",
    "Opc.Ua.Machinery.NodeSet2.xml",
    "Opc.Ua.AMB.NodeSet2.xml",
    "Opc.Ua.LADS.NodeSet2.xml",
)

#: LADS 1.0 ObjectType NodeIds (numeric, in the LADS namespace) by browse name.
LADS_TYPES = {
    "LADSDeviceType": 1002,
    "FunctionalUnitSetType": 1023,
    "FunctionalUnitType": 1003,
    "FunctionSetType": 1026,
    "AnalogControlFunctionType": 1009,
    "AnalogScalarSensorFunctionType": 1016,
    "TimerControlFunctionType": 1013,
    "ProgramManagerType": 1006,
    "ProgramTemplateSetType": 1019,
    "ProgramTemplateType": 1018,
    "ActiveProgramType": 1040,
    "ResultSetType": 1020,
    "ResultType": 1021,
    "LADSDeviceStateMachineType": 1039,
    "FunctionalUnitStateMachineType": 1043,
    "ControlFunctionStateMachineType": 1044,
}

#: DI 1.04 NodeIds (numeric, in the DI namespace).
DI_TYPES = {
    "DeviceSet": 5001,  # the DeviceSet object below Objects (an instance, not a type)
    "FunctionalGroupType": 1005,
}

_SHOWN_AS = ("<DisplayName>Default JSON</DisplayName>", "<DisplayName>Default Json</DisplayName>")
_ENCODINGS = (
    (KEY_VALUE_TYPE_ID, KEY_VALUE_ENCODING_ID),
    (SAMPLE_INFO_TYPE_ID, SAMPLE_INFO_ENCODING_ID),
)


def nodeset_xml(name: str) -> str:
    """The text of a shipped nodeset, as asyncua can import it."""
    text = resources.files("cellauto.sim.opcua").joinpath("nodesets", name).read_text("utf-8")
    return text.replace(*_SHOWN_AS)


class _Quiet(logging.Filter):
    """The importer's warnings about the parts of the nodesets it cannot take (known)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.WARNING


async def import_nodesets(server: Server) -> None:
    """Import the four nodesets into ``server`` (namespaces registered by URI as needed)."""
    quiet = _Quiet()
    loggers = [
        logging.getLogger(f"asyncua.common.{name}") for name in ("xmlimporter", "structures104")
    ]
    for logger in loggers:
        logger.addFilter(quiet)
    try:
        for name in NODESET_FILES:
            text = nodeset_xml(name)
            nodes = await server.import_xml(xmlstring=text, auto_load_definitions=False)
            log.debug("imported %d nodes of %s", len(nodes), name)
    finally:
        for logger in loggers:
            logger.removeFilter(quiet)
    lads = await server.get_namespace_index(LADS_URI)
    for type_id, encoding_id in _ENCODINGS:
        data_type = server.get_node(_ua.node_id(type_id, lads))
        encoding_node = _ua.node_id(encoding_id, lads)
        await create_encoding(data_type, encoding_node, ua.QualifiedName("Default Binary", 0))
        definition = await data_type.read_data_type_definition()
        if isinstance(definition, ua.StructureDefinition):
            definition.DefaultEncodingId = encoding_node
            await data_type.write_data_type_definition(definition)
