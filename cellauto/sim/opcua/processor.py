"""A simulated closed-system cell processor served over OPC UA (LADS ProgramManager).

Below the skeleton (:mod:`.skeleton`), unit ``processor/FunctionalUnitSet/Unit1``:

* ``LADS:FunctionalUnitState``: ``CurrentState`` (Stopped / Running / Aborted), and the
  methods ``StartProgram(ProgramTemplateId, Properties, SupervisoryJobId,
  SupervisoryTaskId, Samples) -> DeviceProgramRunId`` and ``Abort()``.
  ``Properties`` (KeyValueType[]) carry ``SourceContainerId``, ``OutputContainerId``
  and the program's numeric parameters (values as text). StartProgram returns at
  once; a repeated SupervisoryTaskId returns the same run id and starts nothing.
* ``LADS:ProgramManager``: ``ProgramTemplateSet/<template id>`` (DeviceTemplateId,
  Description, Version, Author, Name, TypicalDurationH, Parameters as JSON),
  ``ActiveProgram`` (DeviceProgramRunId, CurrentStepName, CurrentRuntime,
  EstimatedRuntime, State, ProgressPct, ... refreshed every ``status_interval_s``
  while a program runs) and ``ResultSet/<run id>`` (added when a run ends: LADS
  result variables and ``Result``, JSON of :class:`ProgramResult`).
* ``Commands``: ``GetProgramStatus``, ``GetActiveProgram``, ``GetProgramResult``,
  ``AbortProgram`` (exact answers from the instrument, JSON) and ``DrawSample``
  (an operation).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from asyncua import ua

from cellauto.errors import InstrumentError
from cellauto.instruments.cell_processor import ProgramInputs, ProgramStatus
from cellauto.instruments.opcua import _ua
from cellauto.instruments.opcua.lads import KEY_VALUE_TYPE_ID, SAMPLE_INFO_TYPE_ID, FunctionalState
from cellauto.instruments.opcua.wire import decode_key_values, decode_samples
from cellauto.sim.opcua.builder import SpaceBuilder, argument
from cellauto.sim.opcua.device import DeviceServer
from cellauto.sim.opcua.processor_nodes import add_program_manager, add_result
from cellauto.sim.processor import PROGRAM_TEMPLATES, SimCellProcessor

__all__ = ["ProcessorServer", "RunRequest", "serve_processor"]

log = logging.getLogger(__name__)

_S = ua.VariantType.String


@dataclass(frozen=True)
class RunRequest:
    """What StartProgram was given beyond the instrument's own inputs (for the ResultSet)."""

    supervisory_job_id: str
    properties: dict[str, str]
    samples: list[object]


_requests: weakref.WeakKeyDictionary[SimCellProcessor, dict[str, RunRequest]] = (
    weakref.WeakKeyDictionary()
)


class ProcessorServer(DeviceServer):
    """A :class:`SimCellProcessor` as a LADS device (``async with ProcessorServer(sim):``)."""

    device_key = "processor"
    sim: SimCellProcessor

    def __init__(
        self,
        sim: SimCellProcessor,
        *,
        status_interval_s: float = 60.0,
        **options: Any,
    ) -> None:
        if status_interval_s <= 0:
            raise ValueError(f"status_interval_s {status_interval_s:g} s must be > 0")
        super().__init__(sim, **options)
        self.status_interval_s = status_interval_s
        self.requests = _requests.setdefault(sim, {})
        self._published: set[str] = set()
        self._wake: asyncio.Event | None = None
        self._state = FunctionalState.STOPPED
        self._typical_h: dict[str, float] = {}

    # -- address space ------------------------------------------------------------------
    async def build_unit(self, builder: SpaceBuilder, unit: str) -> None:
        ns = builder.ns
        state = self.paths.unit_state
        builder.add_method(
            state, ua.QualifiedName("StartProgram", ns.lads), self.handler(self._start, 5),
            [
                argument("ProgramTemplateId", _S, "a template of ProgramTemplateSet"),
                argument("Properties", _ua.node_id(KEY_VALUE_TYPE_ID, ns.lads),
                         "SourceContainerId, OutputContainerId and numeric parameters",
                         array=True),
                argument("SupervisoryJobId", _S),
                argument("SupervisoryTaskId", _S, "idempotency key: a repeat starts nothing"),
                argument("Samples", _ua.node_id(SAMPLE_INFO_TYPE_ID, ns.lads), array=True),
            ],
            [argument("DeviceProgramRunId", _S)],
            description="Start a program; returns its run id at once",
        )  # fmt: skip
        builder.add_method(
            state, ua.QualifiedName("Abort", ns.lads), self.handler(self._abort_active, 0), [], [],
            description="Abort the running program",
        )  # fmt: skip
        templates = list(PROGRAM_TEMPLATES.values())  # the device's configuration
        self._typical_h = {t.template_id: t.typical_duration_h for t in templates}
        add_program_manager(builder, unit, templates)
        commands = self.paths.commands
        run_id = [argument("DeviceProgramRunId", _S)]
        for name, function, inputs, output in (
            ("GetProgramStatus", self._status, run_id, "StatusJson"),
            ("GetActiveProgram", self._active, [], "StatusJson"),
            ("GetProgramResult", self._result, run_id, "ResultJson"),
            ("AbortProgram", self._abort, run_id, "StatusJson"),
        ):
            builder.add_method(
                commands, ua.QualifiedName(name, ns.own), self.handler(function, len(inputs)),
                inputs, [argument(output, _S, "JSON; empty: none")],
            )  # fmt: skip
        self.operation_method(
            builder, "DrawSample",
            [argument("ContainerId", _S), argument("VolumeMl", ua.VariantType.Double)],
            lambda container, volume: lambda: self.sim.draw_sample(container, volume),
            "Draw a sample through the aseptic sampling port",
        )  # fmt: skip

    # -- methods ------------------------------------------------------------------------
    async def _start(
        self, template_id: str, properties: object, job_id: str, task_id: str, samples: object
    ) -> list[ua.Variant]:
        pairs = decode_key_values(properties)
        infos = decode_samples(samples)
        source = pairs.pop("SourceContainerId", "")
        output = pairs.pop("OutputContainerId", "")
        if not source or not output:
            raise ValueError(
                f"{self.where}: StartProgram needs the Properties SourceContainerId and "
                f"OutputContainerId; got {', '.join(pairs) or 'neither'}"
            )
        if not task_id:
            raise ValueError(f"{self.where}: StartProgram needs a SupervisoryTaskId")
        parameters: dict[str, float] = {}
        for name, text in pairs.items():
            try:
                parameters[name] = float(text)
            except ValueError:
                raise ValueError(
                    f"{self.where}: parameter {name} {text!r} is not a number"
                ) from None
        inputs = ProgramInputs(
            source_container_id=source, output_container_id=output, parameters=parameters
        )
        run_id = await self.sim.start_program(template_id or "", inputs, task_id)
        given = {"SourceContainerId": source, "OutputContainerId": output, **pairs}
        self.requests.setdefault(run_id, RunRequest(job_id or "", given, list(infos)))
        await self._refresh_quietly()
        if self._wake is not None:
            self._wake.set()
        return [ua.Variant(run_id, _S)]

    async def _status(self, run_id: str) -> list[ua.Variant]:
        return [ua.Variant((await self.sim.program_status(run_id)).model_dump_json(), _S)]

    async def _active(self) -> list[ua.Variant]:
        status = await self.sim.active_program()
        return [ua.Variant(status.model_dump_json() if status else "", _S)]

    async def _result(self, run_id: str) -> list[ua.Variant]:
        return [ua.Variant((await self.sim.program_result(run_id)).model_dump_json(), _S)]

    async def _abort(self, run_id: str) -> list[ua.Variant]:
        status = await self.sim.abort_program(run_id)
        await self._refresh_quietly()
        return [ua.Variant(status.model_dump_json(), _S)]

    async def _abort_active(self) -> None:
        status = await self.sim.active_program()
        if status is None or status.state != "running":
            raise InstrumentError(f"{self.where}: no program is running; nothing to abort")
        await self._abort(status.device_program_run_id)

    # -- following the programs ---------------------------------------------------------
    async def started(self) -> None:
        self._wake = asyncio.Event()
        await super().started()
        self.spawn(self._follow())

    async def _refresh_quietly(self) -> None:
        """Refresh after a command; a status the instrument will not give now can wait."""
        try:
            await self.refresh_programs()
        except InstrumentError as exc:
            log.info("%s: program status not refreshed: %s", self.where, exc)

    async def _follow(self) -> None:
        wake = self._wake or asyncio.Event()
        while True:
            try:
                status = await self.refresh_programs()
            except InstrumentError as exc:  # a simulated outage: try again later
                log.info("%s: no program status: %s", self.where, exc)
                status = None
            if status is not None and status.state == "running":
                await asyncio.sleep(self.status_interval_s)
            else:
                await wake.wait()
                wake.clear()

    async def refresh_programs(self) -> ProgramStatus | None:
        """Update ActiveProgram, the unit state and the ResultSet from the instrument."""
        status = await self.sim.active_program()
        if status is not None:
            await self._write_active(status)
        self._state = {
            "running": FunctionalState.RUNNING,
            "aborted": FunctionalState.ABORTED,
        }.get(status.state if status else "", FunctionalState.STOPPED)
        await self.refresh_unit_state()
        for run_id, request in self.requests.items():
            if run_id in self._published:
                continue
            run = await self.sim.program_status(run_id)
            if run.state == "running":
                continue
            result = await self.sim.program_result(run_id)
            builder = SpaceBuilder(self.server, self.ns)  # type: ignore[arg-type]
            add_result(builder, f"{self.paths.unit}/ProgramManager/ResultSet", run, result, request)
            await builder.commit()
            self._published.add(run_id)
        return status

    async def _write_active(self, status: ProgramStatus) -> None:
        base = f"{self.paths.unit}/ProgramManager/ActiveProgram"
        end_s = status.ended_process_time_s or self.sim.world.clock.now_s()
        runtime_ms = 1000.0 * (end_s - status.started_process_time_s)
        estimate_ms = 3.6e6 * self._typical_h.get(status.template_id, 0.0)
        phase = ua.LocalizedText(status.phase)
        for name, value, vtype in (
            ("DeviceProgramRunId", status.device_program_run_id, _S),
            ("CurrentStepName", phase, ua.VariantType.LocalizedText),
            ("CurrentRuntime", runtime_ms, ua.VariantType.Double),
            ("EstimatedRuntime", estimate_ms, ua.VariantType.Double),
            ("State", status.state, _S),
            ("ProgressPct", status.progress_pct, ua.VariantType.Double),
            ("SupervisoryTaskId", status.supervisory_task_id, _S),
            ("TemplateId", status.template_id, _S),
            ("Status", status.model_dump_json(), _S),
        ):
            await self.write(f"{base}/{name}", value, vtype)

    def unit_state(self) -> FunctionalState:
        return self._state


@asynccontextmanager
async def serve_processor(
    sim: SimCellProcessor,
    *,
    status_interval_s: float = 60.0,
    **options: Any,
) -> AsyncIterator[ProcessorServer]:
    """Serve ``sim`` until the block ends (``server.url`` is where to connect).

    ``options``: ``host``, ``port``, ``security``, ``tune_timers`` (:class:`SimOpcUaServer`).
    """
    server = ProcessorServer(sim, status_interval_s=status_interval_s, **options)
    async with server:
        yield server
