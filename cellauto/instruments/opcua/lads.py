"""The LADS vocabulary shared by the simulated servers and the adapters.

Namespaces, browse names, the NodeId scheme, state numbers and the bioreactor's
functions are named here once, so a server and a client cannot drift apart.

**NodeId scheme.** Every node of a simulated device lives in our namespace
(:data:`CELLAUTO_URI`; ns=2 on our servers, but clients resolve the index by URI) and
its string identifier is its browse path from the device, joined by ``/``::

    ns=2;s=bioreactor
    ns=2;s=bioreactor/FunctionalUnitSet/Unit1/FunctionSet/TemperatureController/TargetValue
    ns=2;s=processor/FunctionalUnitSet/Unit1/ProgramManager/ActiveProgram/DeviceProgramRunId
    ns=2;s=processor/FunctionalUnitSet/Unit1/FunctionalUnitState/StartProgram

**Browse names** are in the namespace of the model that defines them: DI
(``DeviceSet``, ``Manufacturer``, ``Identification``), LADS (``FunctionalUnitSet``,
``FunctionSet``, ``CurrentValue``, ``TargetValue``, ``ProgramManager``,
``StartProgram``, ...). Instance names and our additions are in ours (``Unit1``,
``TemperatureController`` as in Eppendorf's BPC model, ``Commands``). The nodesets
are loaded by the simulated servers (:mod:`cellauto.sim.opcua._nodesets`), so
nodes carry LADS type definitions; adapters rely on browse names only.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

__all__ = [
    "AMB_URI",
    "BIOREACTOR_CONTROL_FUNCTIONS",
    "BIOREACTOR_SENSOR_FUNCTIONS",
    "CELLAUTO_URI",
    "DI_URI",
    "KEY_VALUE_ENCODING_ID",
    "KEY_VALUE_TYPE_ID",
    "LADS_URI",
    "MACHINERY_URI",
    "NAMESPACE_URIS",
    "SAMPLE_INFO_ENCODING_ID",
    "SAMPLE_INFO_TYPE_ID",
    "UNIT",
    "AnalogFunction",
    "FunctionalState",
    "unece_unit_id",
]

CELLAUTO_URI = "urn:cellauto:opcua"
DI_URI = "http://opcfoundation.org/UA/DI/"
MACHINERY_URI = "http://opcfoundation.org/UA/Machinery/"
AMB_URI = "http://opcfoundation.org/UA/AMB/"
LADS_URI = "http://opcfoundation.org/UA/LADS/"
#: Registered in this order after the server's application URI (ns=1), so ours is ns=2.
NAMESPACE_URIS = (CELLAUTO_URI, DI_URI, MACHINERY_URI, AMB_URI, LADS_URI)

#: LADS 1.0 data types of StartProgram's arguments (numeric ids in the LADS namespace).
KEY_VALUE_TYPE_ID = 3003
KEY_VALUE_ENCODING_ID = 5042
SAMPLE_INFO_TYPE_ID = 3002
SAMPLE_INFO_ENCODING_ID = 5045

#: The one functional unit of each simulated device, relative to the device node.
UNIT = "FunctionalUnitSet/Unit1"


class FunctionalState(IntEnum):
    """LADS FunctionalStateMachineType state numbers (``FunctionalUnitState``)."""

    ABORTED = 1
    ABORTING = 2
    CLEARING = 3
    STOPPED = 4
    RUNNING = 5
    STOPPING = 6

    @property
    def display_name(self) -> str:
        return self.name.capitalize()


@dataclass(frozen=True)
class AnalogFunction:
    """One analog function of the bioreactor's FunctionSet.

    ``setpoint`` is the :class:`~cellauto.instruments.bioreactor.Setpoints` field its
    TargetValue sets (None: a sensor, no TargetValue); ``process_value`` the
    :class:`~cellauto.instruments.bioreactor.ProcessValues` field behind its
    CurrentValue (None: the setpoint in force is reported).
    """

    browse_name: str
    setpoint: str | None
    process_value: str | None
    unit: str
    unece_code: str
    description: str

    @property
    def unit_id(self) -> int:
        return unece_unit_id(self.unece_code)


BIOREACTOR_CONTROL_FUNCTIONS: tuple[AnalogFunction, ...] = (
    AnalogFunction(
        "TemperatureController", "temperature_c", "temperature_c", "°C", "CEL", "culture"
    ),
    AnalogFunction("pHController", "ph", "ph", "pH", "Q30", "culture pH"),
    AnalogFunction(
        "DOController", "dissolved_oxygen_pct", "dissolved_oxygen_pct", "%", "P1", "dissolved O2"
    ),
    AnalogFunction(
        "RockerController", "rocking_rate_rpm", "rocking_rate_rpm", "rpm", "RPM", "rocking rate"
    ),
    AnalogFunction("RockerAngleController", "rocking_angle_deg", None, "°", "DD", "rocking angle"),
    AnalogFunction(
        "PerfusionPump",
        "perfusion_rate_ml_per_day",
        "perfusion_rate_ml_per_day",
        "mL/d",
        "G54",
        "perfusion rate",
    ),
)

BIOREACTOR_SENSOR_FUNCTIONS: tuple[AnalogFunction, ...] = (
    AnalogFunction("CultureVolumeSensor", None, "culture_volume_ml", "mL", "MLT", "bag content"),
    AnalogFunction("GlucoseSensor", None, "glucose_mmol_per_l", "mmol/L", "M33", "glucose"),
    AnalogFunction("LactateSensor", None, "lactate_mmol_per_l", "mmol/L", "M33", "lactate"),
)


def unece_unit_id(code: str) -> int:
    """EUInformation.UnitId of a UNECE common code (OPC UA Part 8: bytes of the code)."""
    unit_id = 0
    for char in code.upper():
        unit_id = (unit_id << 8) | ord(char)
    return unit_id
