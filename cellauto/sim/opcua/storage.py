"""A simulated LN2 cryostorage freezer served over OPC UA with the LADS address space.

Below the skeleton (:mod:`.skeleton`), unit ``storage/FunctionalUnitSet/Unit1``:

* ``LADS:FunctionalUnitState``: ``CurrentState`` is Running while a container is being
  stored or retrieved (the lid is open), Stopped otherwise.
* ``LADS:FunctionSet``: ``TemperatureSensor`` (``SensorValue``, vapour phase, °C) and
  ``LN2LevelController`` (the autofill: ``CurrentValue`` the LN2 level in %,
  ``TargetValue`` the level autofill fills to (read-only), ``IsEnabled`` autofill on,
  ``ControlFunctionState``).
* ``Conditions`` (JSON of the last :class:`StorageConditions` reading, written with the
  values above in one go), ``Alarm`` (why the freezer alarms; empty: it does not) and
  ``Inventory`` (JSON of the stored items, in storage order, updated as they change).
* ``Commands``: ``Store(OperationId, ContainerId, Rack, Box, Slot)`` and
  ``Retrieve(OperationId, ContainerId)`` are operations (:mod:`.operations`: they
  return at once, the :class:`StoredItem` follows in ``LastOperation`` after the
  handling time, and ``GetOperation`` tells a resumed controller what became of one);
  ``ReadConditions()`` takes a reading now and returns its JSON (it also refreshes the
  values above); ``GetInventory()`` returns the inventory's JSON. Refusals (an unknown
  container, a taken position, a warm freezer) are Bad statuses with the instrument's
  message.

**Readings.** The values are those of the last reading, with its process time as
source timestamp. Before the first reading they show the model's state without sensor
noise (:meth:`SimCryoStorage.model_conditions`), so they are Good from the first read
without drawing noise a run would otherwise have drawn. With ``sample_interval_s`` the
server also takes a reading of its own every so often (a run then sees other noise than
in process); with None (``cellauto sim serve``) only when a client asks.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from asyncua import ua

from cellauto.errors import InstrumentError
from cellauto.instruments.cryo_storage import StorageConditions, StoragePosition, StoredItem
from cellauto.instruments.opcua.lads import FunctionalState, unece_unit_id
from cellauto.instruments.opcua.wire import OperationRecord
from cellauto.sim.opcua.builder import SpaceBuilder, argument
from cellauto.sim.opcua.device import DeviceServer
from cellauto.sim.opcua.skeleton import add_state
from cellauto.sim.storage import SimCryoStorage

__all__ = ["StorageServer", "inventory_json", "serve_storage"]

log = logging.getLogger(__name__)

_S = ua.VariantType.String
_BOOL = ua.VariantType.Boolean
TEMPERATURE = "FunctionSet/TemperatureSensor"
LEVEL = "FunctionSet/LN2LevelController"


def inventory_json(items: list[StoredItem]) -> str:
    """The inventory as it crosses the wire: a JSON array of StoredItem."""
    return json.dumps([item.model_dump(mode="json") for item in items])


class StorageServer(DeviceServer):
    """A :class:`SimCryoStorage` as a LADS device (``async with StorageServer(sim):``)."""

    device_key = "storage"
    sim: SimCryoStorage

    def __init__(
        self, sim: SimCryoStorage, *, sample_interval_s: float | None = None, **options: Any
    ) -> None:
        if sample_interval_s is not None and sample_interval_s <= 0:
            raise ValueError(f"sample_interval_s {sample_interval_s:g} s must be > 0 or None")
        super().__init__(sim, **options)
        self.sample_interval_s = sample_interval_s

    # -- address space ------------------------------------------------------------------
    async def build_unit(self, builder: SpaceBuilder, unit: str) -> None:
        ns, sim = builder.ns, self.sim
        shown = sim.model_conditions()
        function_set = builder.add_object(
            unit, ua.QualifiedName("FunctionSet", ns.lads), typedef=ns.lads_type("FunctionSetType")
        )
        sensor = builder.add_object(
            function_set, ua.QualifiedName("TemperatureSensor", ns.own),
            description="vapour-phase temperature",
            typedef=ns.lads_type("AnalogScalarSensorFunctionType"),
        )  # fmt: skip
        builder.add_variable(sensor, ua.QualifiedName("IsEnabled", ns.lads), True, _BOOL, prop=True)
        builder.add_analog(
            sensor, ua.QualifiedName("SensorValue", ns.lads), shown.temperature_c,
            unit_id=unece_unit_id("CEL"), unit="°C",
        )  # fmt: skip
        level = builder.add_object(
            function_set, ua.QualifiedName("LN2LevelController", ns.own),
            description=f"LN2 autofill: fills from {sim.model.autofill_low_pct:g} % to "
            f"{sim.model.autofill_high_pct:g} %",
            typedef=ns.lads_type("AnalogControlFunctionType"),
        )  # fmt: skip
        builder.add_variable(
            level, ua.QualifiedName("IsEnabled", ns.lads), shown.autofill_on, _BOOL, prop=True
        )
        percent = unece_unit_id("P1")
        for value_name, value in (
            ("CurrentValue", shown.ln2_level_pct),
            ("TargetValue", sim.model.autofill_high_pct),
        ):
            builder.add_analog(
                level, ua.QualifiedName(value_name, ns.lads), value,
                unit_id=percent, unit="%", eu_range=(0.0, 100.0),
            )  # fmt: skip
        state = builder.add_object(
            level,
            ua.QualifiedName("ControlFunctionState", ns.lads),
            typedef=ns.lads_type("ControlFunctionStateMachineType"),
        )
        running = FunctionalState.RUNNING if shown.autofill_on else FunctionalState.STOPPED
        add_state(builder, state, running, running.value)
        for name, text, description in (
            ("Conditions", shown.model_dump_json(), "JSON of the last StorageConditions"),
            ("Alarm", shown.alarm or "", "why the freezer alarms; empty: it does not"),
            ("Inventory", inventory_json(await self._inventory()), "JSON of the stored items"),
        ):
            builder.add_variable(
                unit, ua.QualifiedName(name, ns.own), text, _S, description=description
            )
        self._add_commands(builder)

    def _add_commands(self, builder: SpaceBuilder) -> None:
        sim, own = self.sim, builder.ns.own

        def store(container: str, rack: str, box: int, slot: int) -> Callable[[], Awaitable[Any]]:
            async def act() -> StoredItem:
                position = StoragePosition(rack=rack, box=box, slot=slot)
                return await sim.store(container, position)

            return act

        self.operation_method(
            builder, "Store",
            [
                argument("ContainerId", _S, "a container on the line"),
                argument("Rack", _S), argument("Box", ua.VariantType.Int32, "from 1"),
                argument("Slot", ua.VariantType.Int32, "from 1"),
            ],
            store, "Put a container at a free position (refused when the freezer is too warm)",
        )  # fmt: skip
        self.operation_method(
            builder, "Retrieve", [argument("ContainerId", _S, "a stored container")],
            lambda container: lambda: sim.retrieve(container),
            "Take a stored container out; returns where it was",
        )  # fmt: skip
        for name, function, output, description in (
            ("ReadConditions", self._read_conditions, "ConditionsJson",
             "Take a reading now (also refreshes the published values)"),
            ("GetInventory", self._get_inventory, "InventoryJson",
             "Everything stored, in storage order"),
        ):  # fmt: skip
            builder.add_method(
                self.paths.commands, ua.QualifiedName(name, own), self.handler(function, 0),
                [], [argument(output, _S, "JSON")], description=description,
            )  # fmt: skip

    # -- methods ------------------------------------------------------------------------
    async def _read_conditions(self) -> list[ua.Variant]:
        conditions = await self.sample()
        return [ua.Variant(conditions.model_dump_json(), _S)]

    async def _get_inventory(self) -> list[ua.Variant]:
        return [ua.Variant(inventory_json(await self.sim.inventory()), _S)]

    async def _inventory(self) -> list[StoredItem]:
        try:
            return await self.sim.inventory()
        except InstrumentError as exc:  # e.g. a simulated outage: shown as it was
            log.info("%s: inventory not read: %s", self.where, exc)
            return []

    # -- behaviour ----------------------------------------------------------------------
    async def started(self) -> None:
        await super().started()
        await self.publish(self.sim.model_conditions())  # stamped with the model's time
        if self.sample_interval_s is not None:
            self.spawn(self._sample_every(self.sample_interval_s))

    async def _sample_every(self, interval_s: float) -> None:
        while True:
            try:
                await self.sample()
            except InstrumentError as exc:  # e.g. a simulated outage: values stay as they were
                log.info("%s: no reading: %s", self.where, exc)
            await asyncio.sleep(interval_s)

    async def sample(self) -> StorageConditions:
        """Take a reading from the instrument and publish it."""
        conditions = await self.sim.conditions()
        await self.publish(conditions)
        return conditions

    async def publish(self, conditions: StorageConditions) -> None:
        at = datetime.fromtimestamp(conditions.process_time_s, tz=UTC)
        unit, d = self.paths.unit, ua.VariantType.Double
        running = FunctionalState.RUNNING if conditions.autofill_on else FunctionalState.STOPPED
        state = f"{unit}/{LEVEL}/ControlFunctionState/CurrentState"
        for path, value, vtype in (
            (f"{TEMPERATURE}/SensorValue", conditions.temperature_c, d),
            (f"{LEVEL}/CurrentValue", conditions.ln2_level_pct, d),
            (f"{LEVEL}/IsEnabled", conditions.autofill_on, _BOOL),
            ("Alarm", conditions.alarm or "", _S),
            ("Conditions", conditions.model_dump_json(), _S),
        ):
            await self.write(f"{unit}/{path}", value, vtype, at=at)
        await self.write(
            state, ua.LocalizedText(running.display_name), ua.VariantType.LocalizedText
        )
        await self.write(f"{state}/Number", running.value, ua.VariantType.UInt32)

    async def operation_ended(self, record: OperationRecord) -> None:
        if record.command in ("Store", "Retrieve"):
            items = await self._inventory()
            await self.write(f"{self.paths.unit}/Inventory", inventory_json(items), _S)

    def unit_state(self) -> FunctionalState:
        return FunctionalState.RUNNING if self.operations.running else FunctionalState.STOPPED


@asynccontextmanager
async def serve_storage(
    sim: SimCryoStorage, *, sample_interval_s: float | None = None, **options: Any
) -> AsyncIterator[StorageServer]:
    """Serve ``sim`` until the block ends (``server.url`` is where to connect).

    ``options``: ``host``, ``port``, ``security``, ``tune_timers`` (:class:`SimOpcUaServer`).
    """
    server = StorageServer(sim, sample_interval_s=sample_interval_s, **options)
    async with server:
        yield server
