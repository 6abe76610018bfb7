"""The DI/LADS skeleton every simulated device shares (type definitions in brackets).

::

    Objects
    └─ DI:DeviceSet                                  DI's own (ns=DI;i=5001)
       └─ <key> ("SimWave 1L BR-0001")               ns=2;s=<key>  [LADSDeviceType]
          ├─ DI:Manufacturer, DI:Model, DI:SerialNumber, DI:SoftwareRevision
          ├─ DI:Identification (the same four)       [DI:FunctionalGroupType]
          ├─ LADS:DeviceState / CurrentState ("Operate", Number 2)
          │                                          [LADSDeviceStateMachineType]
          └─ LADS:FunctionalUnitSet                  [FunctionalUnitSetType]
             └─ Unit1                                ns=2;s=<key>/FunctionalUnitSet/Unit1
                │                                    [FunctionalUnitType]
                ├─ LADS:FunctionalUnitState / CurrentState (+ Number)
                │                                    [FunctionalUnitStateMachineType]
                └─ Commands
                   ├─ GetOperation(OperationId) -> OperationJson
                   └─ LastOperation (JSON of the last operation that changed)

The device adds its FunctionSet or ProgramManager, and its methods, to the unit. The
types come from the LADS and DI nodesets (:mod:`._nodesets`); the children a type
declares are not instantiated, each device adds those it has.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from asyncua import ua

from cellauto.instruments.base import InstrumentIdentity
from cellauto.instruments.opcua.lads import FunctionalState
from cellauto.instruments.opcua.wire import COMMANDS
from cellauto.sim.opcua.builder import SpaceBuilder, argument

__all__ = ["DevicePaths", "add_device", "add_state"]

_STRING = ua.VariantType.String


@dataclass(frozen=True)
class DevicePaths:
    device: str
    unit: str
    unit_state: str
    commands: str

    @property
    def last_operation(self) -> str:
        return f"{self.commands}/LastOperation"


def _identity(builder: SpaceBuilder, parent: str, identity: InstrumentIdentity) -> None:
    di = builder.ns.di
    text = ua.VariantType.LocalizedText
    for name, value, vtype in (
        ("Manufacturer", ua.LocalizedText(identity.vendor), text),
        ("Model", ua.LocalizedText(identity.model), text),
        ("SerialNumber", identity.serial, _STRING),
        ("SoftwareRevision", identity.firmware, _STRING),
    ):
        builder.add_variable(parent, ua.QualifiedName(name, di), value, vtype, prop=True)


def add_state(builder: SpaceBuilder, parent: str, state: FunctionalState | str, number: int) -> str:
    """``CurrentState`` (LocalizedText) with its ``Number`` below ``parent``."""
    name = state.display_name if isinstance(state, FunctionalState) else state
    current = builder.add_variable(
        parent, ua.QualifiedName("CurrentState", 0), ua.LocalizedText(name),
        ua.VariantType.LocalizedText,
    )  # fmt: skip
    builder.add_variable(
        current, ua.QualifiedName("Number", 0), number, ua.VariantType.UInt32, prop=True
    )
    return current


def add_device(
    builder: SpaceBuilder,
    key: str,
    identity: InstrumentIdentity,
    get_operation: Callable[..., Any],
) -> DevicePaths:
    """The skeleton above; ``get_operation`` is the GetOperation method callback."""
    ns = builder.ns
    lads = ns.lads_type
    device = builder.add_object(
        ns.di_node("DeviceSet"), ua.QualifiedName(key, ns.own), organizes=True, path=key,
        display_name=f"{identity.model} {identity.serial}",
        description=f"simulated {identity.model} (LADS device)",
        typedef=lads("LADSDeviceType"),
    )  # fmt: skip
    _identity(builder, device, identity)
    identification = builder.add_object(
        device, ua.QualifiedName("Identification", ns.di), typedef=ns.di_node("FunctionalGroupType")
    )
    _identity(builder, identification, identity)
    device_state = builder.add_object(
        device, ua.QualifiedName("DeviceState", ns.lads), typedef=lads("LADSDeviceStateMachineType")
    )
    add_state(builder, device_state, "Operate", 2)
    unit_set = builder.add_object(
        device,
        ua.QualifiedName("FunctionalUnitSet", ns.lads),
        typedef=lads("FunctionalUnitSetType"),
    )
    unit = builder.add_object(
        unit_set, ua.QualifiedName("Unit1", ns.own), typedef=lads("FunctionalUnitType")
    )
    unit_state = builder.add_object(
        unit, ua.QualifiedName("FunctionalUnitState", ns.lads),
        typedef=lads("FunctionalUnitStateMachineType"),
    )  # fmt: skip
    add_state(builder, unit_state, FunctionalState.STOPPED, FunctionalState.STOPPED.value)
    commands = builder.add_object(
        unit, ua.QualifiedName(COMMANDS, ns.own), description="cellauto commands of this unit"
    )
    builder.add_variable(
        commands, ua.QualifiedName("LastOperation", ns.own), "", _STRING,
        description="JSON of the last operation that started or ended (OperationRecord)",
    )  # fmt: skip
    builder.add_method(
        commands, ua.QualifiedName("GetOperation", ns.own), get_operation,
        [argument("OperationId", _STRING, "the id the operation was started with")],
        [argument("OperationJson", _STRING, "JSON of the OperationRecord")],
        description="The state and outcome of an operation this device accepted",
    )  # fmt: skip
    return DevicePaths(device=device, unit=unit, unit_state=unit_state, commands=commands)
