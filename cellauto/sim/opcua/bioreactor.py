"""A simulated bioreactor served over OPC UA with the LADS address space.

Below the skeleton (:mod:`.skeleton`), unit ``bioreactor/FunctionalUnitSet/Unit1``:

* ``LADS:FunctionSet``: ``TemperatureController``, ``pHController``, ``DOController``,
  ``RockerController``, ``RockerAngleController``, ``PerfusionPump`` (analog control
  functions: ``CurrentValue``, writable ``TargetValue`` with EURange and
  EngineeringUnits, ``IsEnabled``, ``ControlFunctionState``) and
  ``CultureVolumeSensor``, ``GlucoseSensor``, ``LactateSensor`` (``SensorValue``).
* ``LADS:ProgramManager`` with an empty ``ProgramTemplateSet`` (the bag is driven by
  setpoints and commands, not programs), ``ActiveProgram`` and ``ResultSet``.
* ``ProcessValues``: JSON of the last :class:`ProcessValues` sample, written with the
  CurrentValues in one go, so a subscriber gets a consistent snapshot.
* ``Commands``: ``SetSetpoints``, ``Seed``, ``AddReagent``, ``Feed``, ``DrawSample``,
  ``Harvest`` (operations: they return at once, the outcome follows in
  ``LastOperation``), ``SampleProcessValues()`` (sample now, return the JSON).

**Sampling.** CurrentValues are sampled from the simulated instrument every
``sample_interval_s`` of process time and whenever a client calls
``SampleProcessValues``. Each sample advances the culture model and draws sensor noise
exactly as an in-process ``read_process_values()`` does; so a server that samples on
its own (``sample_interval_s`` not None) gives a run other numbers than in-process.
For a run identical to in-process, serve with ``sample_interval_s=None`` and let the
adapter sample on demand (``max_age_s=0``). Then the CurrentValues and SensorValues
show a noise-free snapshot of the model (:meth:`SimBioreactor.snapshot_values`: no
random draw, the culture advanced on a copy), published at start, refreshed before
any client reads one, after every operation and every :data:`REFRESH_INTERVAL_S` of
process time (for subscribers); ``ProcessValues`` keeps the last real sample.

**Writing a TargetValue** applies that setpoint through the simulated instrument (as
an operation, ~1 s); a value outside :data:`SETPOINT_LIMITS` is refused with
``BadOutOfRange``.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from asyncua import ua

from cellauto.errors import InstrumentError
from cellauto.instruments.bioreactor import SETPOINT_LIMITS, ProcessValues, Reagent, Setpoints
from cellauto.instruments.opcua import _ua
from cellauto.instruments.opcua.lads import (
    BIOREACTOR_CONTROL_FUNCTIONS,
    BIOREACTOR_SENSOR_FUNCTIONS,
    AnalogFunction,
    FunctionalState,
)
from cellauto.instruments.opcua.wire import OperationRecord
from cellauto.sim.bioreactor import SimBioreactor
from cellauto.sim.opcua.builder import SpaceBuilder, argument
from cellauto.sim.opcua.device import DeviceServer
from cellauto.sim.opcua.processor_nodes import add_program_manager
from cellauto.sim.opcua.skeleton import add_state

__all__ = ["REFRESH_INTERVAL_S", "BioreactorServer", "serve_bioreactor"]

log = logging.getLogger(__name__)

_D, _S = ua.VariantType.Double, ua.VariantType.String
_NAN = float("nan")
#: Process time between noise-free refreshes when sampling is on request only.
REFRESH_INTERVAL_S = 600.0
_SETPOINT_ARGS = [
    ("TemperatureC", "temperature_c"),
    ("Ph", "ph"),
    ("DissolvedOxygenPct", "dissolved_oxygen_pct"),
    ("RockingRateRpm", "rocking_rate_rpm"),
    ("RockingAngleDeg", "rocking_angle_deg"),
    ("PerfusionRateMlPerDay", "perfusion_rate_ml_per_day"),
]


def _value_name(function: AnalogFunction) -> str:
    return "SensorValue" if function.setpoint is None else "CurrentValue"


def _given(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


class BioreactorServer(DeviceServer):
    """A :class:`SimBioreactor` as a LADS device (``async with BioreactorServer(sim):``)."""

    device_key = "bioreactor"
    sim: SimBioreactor

    def __init__(
        self,
        sim: SimBioreactor,
        *,
        sample_interval_s: float | None = 600.0,
        **options: Any,
    ) -> None:
        if sample_interval_s is not None and sample_interval_s <= 0:
            raise ValueError(f"sample_interval_s {sample_interval_s:g} s must be > 0 or None")
        super().__init__(sim, **options)
        self.sample_interval_s = sample_interval_s
        self._functions: dict[str, str] = {}  # browse name -> path
        self._writes = 0
        self._shown_s: float | None = None  # process time of the values shown (on demand)

    # -- address space ------------------------------------------------------------------
    async def build_unit(self, builder: SpaceBuilder, unit: str) -> None:
        ns = builder.ns
        function_set = builder.add_object(
            unit, ua.QualifiedName("FunctionSet", ns.lads), typedef=ns.lads_type("FunctionSetType")
        )
        for function in (*BIOREACTOR_CONTROL_FUNCTIONS, *BIOREACTOR_SENSOR_FUNCTIONS):
            kind = (
                "AnalogControlFunctionType"
                if function.setpoint
                else "AnalogScalarSensorFunctionType"
            )
            path = builder.add_object(
                function_set, ua.QualifiedName(function.browse_name, ns.own),
                description=function.description, typedef=ns.lads_type(kind),
            )  # fmt: skip
            self._functions[function.browse_name] = path
            builder.add_variable(
                path, ua.QualifiedName("IsEnabled", ns.lads), True, ua.VariantType.Boolean,
                prop=True,
            )  # fmt: skip
            eu_id, eu = function.unit_id, function.unit
            if function.setpoint is None:
                builder.add_analog(
                    path, ua.QualifiedName("SensorValue", ns.lads), 0.0, unit_id=eu_id, unit=eu
                )
                continue
            low, high, _ = SETPOINT_LIMITS[function.setpoint]
            builder.add_analog(
                path, ua.QualifiedName("CurrentValue", ns.lads), 0.0,
                unit_id=eu_id, unit=eu, eu_range=(low, high),
            )  # fmt: skip
            target = builder.add_analog(
                path, ua.QualifiedName("TargetValue", ns.lads),
                float(getattr(self.sim.setpoints, function.setpoint) or 0.0),
                unit_id=eu_id, unit=eu, eu_range=(low, high), writable=True,
            )  # fmt: skip
            self.guard_write(target, self._target_guard(function))
            state = builder.add_object(
                path, ua.QualifiedName("ControlFunctionState", ns.lads),
                typedef=ns.lads_type("ControlFunctionStateMachineType"),
            )  # fmt: skip
            add_state(builder, state, FunctionalState.RUNNING, FunctionalState.RUNNING.value)
        add_program_manager(builder, unit, [])  # no programs: setpoints and commands
        builder.add_variable(
            unit, ua.QualifiedName("ProcessValues", ns.own), "", _S,
            description="JSON of the last process-value sample (ProcessValues)",
        )  # fmt: skip
        self._add_commands(builder)
        if self.sample_interval_s is None:
            self.refresh_before_read(self._value_paths(), self._refresh_if_old)

    def _value_paths(self) -> list[str]:
        functions = (*BIOREACTOR_CONTROL_FUNCTIONS, *BIOREACTOR_SENSOR_FUNCTIONS)
        return [f"{self._functions[f.browse_name]}/{_value_name(f)}" for f in functions]

    def _add_commands(self, builder: SpaceBuilder) -> None:
        sim = self.sim
        method = self.operation_method

        def set_setpoints(*values: float) -> Callable[[], Awaitable[Any]]:
            changes = {
                field: _given(v) for (_, field), v in zip(_SETPOINT_ARGS, values, strict=True)
            }
            return lambda: sim.set_setpoints(Setpoints(**changes))

        def add_reagent(
            name: str, kind: str, volume_ml: float, lot: str, target: str, moi: float
        ) -> Callable[[], Awaitable[Any]]:
            return lambda: sim.add_reagent(
                Reagent(name=name, kind=kind, volume_ml=volume_ml, lot=lot,
                        target_cells=target, moi=_given(moi))
            )  # fmt: skip

        setpoint_args = [
            argument(n, _D, f"{f}; NaN leaves it unchanged") for n, f in _SETPOINT_ARGS
        ]
        method(builder, "SetSetpoints", setpoint_args, set_setpoints, "Apply setpoints")
        method(
            builder, "Seed",
            [argument("SourceContainerId", _S), argument("VolumeMl", _D), argument("MediumMl", _D)],
            lambda source, volume, medium: lambda: sim.seed(source, volume, medium),
            "Transfer cells from a container and add medium",
        )  # fmt: skip
        reagent_args = [
            argument("Name", _S), argument("Kind", _S, "activation, vector or cytokine"),
            argument("VolumeMl", _D), argument("Lot", _S), argument("TargetCells", _S, "T or NK"),
            argument("Moi", _D, "vector only; NaN otherwise"),
        ]  # fmt: skip
        method(builder, "AddReagent", reagent_args, add_reagent, "Add a reagent")
        method(
            builder, "Feed", [argument("MediumMl", _D)],
            lambda medium: lambda: sim.feed(medium), "Add fresh medium",
        )  # fmt: skip
        method(
            builder, "DrawSample", [argument("VolumeMl", _D)],
            lambda volume: lambda: sim.draw_sample(volume), "Draw a sample aseptically",
        )  # fmt: skip
        method(
            builder, "Harvest", [argument("TargetContainerId", _S)],
            lambda target: lambda: sim.harvest(target), "Move the culture into a new container",
        )  # fmt: skip
        builder.add_method(
            self.paths.commands, ua.QualifiedName("SampleProcessValues", builder.ns.own),
            self.handler(self._sample_now, 0), [],
            [argument("ProcessValuesJson", _S, "JSON of ProcessValues")],
            description="Sample the process values now (also updates every CurrentValue)",
        )  # fmt: skip

    # -- behaviour ----------------------------------------------------------------------
    async def started(self) -> None:
        await super().started()
        if self.sample_interval_s is None:
            await self.refresh()
            self.spawn(self._refresh_every(REFRESH_INTERVAL_S))
        else:
            self.spawn(self._sample_every(self.sample_interval_s))

    async def _refresh_every(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            await self._refresh_if_old()

    async def _refresh_if_old(self) -> None:
        if self._shown_s != self.sim.world.clock.now_s():
            await self.refresh()

    async def refresh(self) -> None:
        """Show a noise-free snapshot of the instrument in every CurrentValue/SensorValue."""
        values = self.sim.snapshot_values()
        self._shown_s = values.process_time_s
        await self._show(values)

    async def _show(self, values: ProcessValues) -> None:
        at = datetime.fromtimestamp(values.process_time_s, tz=UTC)
        for function in (*BIOREACTOR_CONTROL_FUNCTIONS, *BIOREACTOR_SENSOR_FUNCTIONS):
            value = self._current(function, values)
            name = "SensorValue" if function.setpoint is None else "CurrentValue"
            await self.write(f"{self._functions[function.browse_name]}/{name}", value, _D, at=at)

    async def _sample_every(self, interval_s: float) -> None:
        while True:
            try:
                await self.sample()
            except InstrumentError as exc:  # e.g. a simulated outage: values stay as they were
                log.info("%s: no sample: %s", self.where, exc)
            await asyncio.sleep(interval_s)

    async def _sample_now(self) -> list[ua.Variant]:
        values = await self.sample()
        return [ua.Variant(values.model_dump_json(), _S)]

    async def sample(self) -> ProcessValues:
        """Read the instrument's process values and publish them."""
        values = await self.sim.read_process_values()
        await self._show(values)
        self._shown_s = values.process_time_s
        at = datetime.fromtimestamp(values.process_time_s, tz=UTC)
        await self.write(f"{self.paths.unit}/ProcessValues", values.model_dump_json(), _S, at=at)
        return values

    def _current(self, function: AnalogFunction, values: ProcessValues) -> float:
        if function.process_value is not None:
            return float(getattr(values, function.process_value))
        return float(getattr(self.sim.setpoints, function.setpoint or "") or 0.0)

    def _target_guard(self, function: AnalogFunction) -> Callable[[ua.DataValue], Awaitable[Any]]:
        field = function.setpoint or ""
        low, high, _ = SETPOINT_LIMITS[field]

        async def guard(data: ua.DataValue) -> ua.StatusCode:
            value = data.Value.Value if data.Value is not None else None
            if not isinstance(value, float) or math.isnan(value):
                return _ua.status_code(ua.StatusCodes.BadTypeMismatch)
            if not low <= value <= high:
                return _ua.status_code(ua.StatusCodes.BadOutOfRange)
            self._writes += 1
            operation_id = f"write-{function.browse_name}-{self._writes}"
            try:
                await self.operations.start(
                    operation_id, "SetSetpoints", {field: value},
                    lambda: self.sim.set_setpoints(Setpoints(**{field: value})),
                )  # fmt: skip
            except InstrumentError as exc:
                log.info("%s: TargetValue %s refused: %s", self.where, function.browse_name, exc)
                return _ua.status_code(ua.StatusCodes.BadInvalidState)
            return ua.StatusCode()

        return guard

    async def operation_ended(self, record: OperationRecord) -> None:
        if self.sample_interval_s is None:
            await self.refresh()  # the operation changed what the instrument shows
        if record.command == "SetSetpoints":
            for function in BIOREACTOR_CONTROL_FUNCTIONS:
                target = float(getattr(self.sim.setpoints, function.setpoint or "") or 0.0)
                await self.write(f"{self._functions[function.browse_name]}/TargetValue", target, _D)

    def unit_state(self) -> FunctionalState:
        return FunctionalState.STOPPED if self.sim.culture is None else FunctionalState.RUNNING


@asynccontextmanager
async def serve_bioreactor(
    sim: SimBioreactor,
    *,
    sample_interval_s: float | None = 600.0,
    **options: Any,
) -> AsyncIterator[BioreactorServer]:
    """Serve ``sim`` until the block ends (``server.url`` is where to connect).

    ``options``: ``host``, ``port``, ``security``, ``tune_timers`` (:class:`SimOpcUaServer`).
    """
    server = BioreactorServer(sim, sample_interval_s=sample_interval_s, **options)
    async with server:
        yield server
