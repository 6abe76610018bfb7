"""A simulated flow cytometer served over OPC UA with the LADS address space.

Below the skeleton (:mod:`.skeleton`), unit ``cytometer/FunctionalUnitSet/Unit1``:

* ``LADS:FunctionalUnitState``: ``CurrentState`` is Running while a sample is being
  stained and acquired, Stopped otherwise.
* ``LADS:ProgramManager``: ``ProgramTemplateSet/<panel>`` names the validated staining
  panels (DeviceTemplateId, Name, Description, TypicalDurationH); ``ActiveProgram``
  and ``ResultSet`` stay empty (acquisitions are commands, below).
* ``LastResult``: the last acquisition as typed variables (``SampleId``, ``Panel``,
  ``EventsAcquired``, ``ViablePct``, ``Cd3Pct``, ``Cd4Pct``, ``Cd8Pct``, ``CarPct``,
  ``Cd56Pct``, ``AcquiredAt``) and ``ResultJson`` (JSON of :class:`Immunophenotype`);
  an empty ``SampleId`` until the first acquisition ends. Good from the first read.
* ``Commands``: ``Immunophenotype(OperationId, SampleId, SourceContainerId, VolumeMl,
  DrawnAtProcessTimeS, Panel, Operator)``, an operation (:mod:`.operations`): it
  returns at once, the :class:`Immunophenotype` follows in ``LastOperation`` about
  20 min of process time later, and ``GetOperation(OperationId)`` tells a controller
  that resumed after a crash what became of it. A refusal (unknown sample or panel, too
  few cells) is the method's Bad status with the instrument's message.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from asyncua import ua

from cellauto.instruments.cell_processor import ProgramTemplate
from cellauto.instruments.flow_cytometer import Immunophenotype
from cellauto.instruments.materials import Sample
from cellauto.instruments.opcua.lads import FunctionalState, unece_unit_id
from cellauto.instruments.opcua.wire import OperationRecord
from cellauto.sim.cytometer import SimFlowCytometer
from cellauto.sim.opcua.builder import SpaceBuilder, argument
from cellauto.sim.opcua.device import DeviceServer
from cellauto.sim.opcua.processor_nodes import add_program_manager

__all__ = ["CytometerServer", "serve_cytometer"]

log = logging.getLogger(__name__)

_D, _S = ua.VariantType.Double, ua.VariantType.String
_PERCENT = unece_unit_id("P1")
#: LastResult's percentage variables: browse name -> Immunophenotype field.
PERCENT_FIELDS = {
    "ViablePct": "viable_pct",
    "Cd3Pct": "cd3_pct",
    "Cd4Pct": "cd4_pct",
    "Cd8Pct": "cd8_pct",
    "CarPct": "car_pct",
    "Cd56Pct": "cd56_pct",
}


class CytometerServer(DeviceServer):
    """A :class:`SimFlowCytometer` as a LADS device (``async with CytometerServer(sim):``)."""

    device_key = "cytometer"
    sim: SimFlowCytometer

    @property
    def last_result(self) -> str:
        return f"{self.paths.unit}/LastResult"

    # -- address space ------------------------------------------------------------------
    async def build_unit(self, builder: SpaceBuilder, unit: str) -> None:
        ns = builder.ns
        hours = self.sim.seconds_per_sample / 3600.0
        panels = [
            ProgramTemplate(
                template_id=panel,
                name=panel,
                description=f"stain with the {panel} panel and acquire up to "
                f"{self.sim.target_events} events",
                typical_duration_h=hours,
            )
            for panel in self.sim.panels
        ]
        add_program_manager(builder, unit, panels)
        result = builder.add_object(
            unit, ua.QualifiedName("LastResult", ns.own),
            description="the last acquisition that ended (SampleId empty: none yet)",
        )  # fmt: skip
        builder.add_variable(result, ua.QualifiedName("SampleId", ns.own), "", _S)
        builder.add_variable(result, ua.QualifiedName("Panel", ns.own), "", _S)
        builder.add_variable(
            result, ua.QualifiedName("EventsAcquired", ns.own), 0, ua.VariantType.Int64
        )
        for name in PERCENT_FIELDS:
            builder.add_analog(
                result, ua.QualifiedName(name, ns.own), 0.0,
                unit_id=_PERCENT, unit="%", eu_range=(0.0, 100.0),
            )  # fmt: skip
        builder.add_variable(
            result, ua.QualifiedName("AcquiredAt", ns.own), datetime.fromtimestamp(0.0, tz=UTC),
            ua.VariantType.DateTime, description="process time of the acquisition",
        )  # fmt: skip
        builder.add_variable(
            result, ua.QualifiedName("ResultJson", ns.own), "", _S,
            description="JSON of the Immunophenotype; empty: none yet",
        )  # fmt: skip
        self.operation_method(
            builder, "Immunophenotype",
            [
                argument("SampleId", _S, "the sample's id (from DrawSample of a processor "
                         "or bioreactor)"),
                argument("SourceContainerId", _S, "the container it was drawn from"),
                argument("VolumeMl", _D, "sample volume, mL"),
                argument("DrawnAtProcessTimeS", _D, "when it was drawn, epoch seconds"),
                argument("Panel", _S, "a template of ProgramTemplateSet"),
                argument("Operator", _S, "who asked (for the record)"),
            ],
            self._immunophenotype,
            "Stain and acquire a sample (about 20 min; needs at least 1e5 cells)",
        )  # fmt: skip

    def _immunophenotype(
        self,
        sample_id: str,
        source: str,
        volume_ml: float,
        drawn_s: float,
        panel: str,
        operator: str,
    ) -> Callable[[], Awaitable[Immunophenotype]]:
        async def act() -> Immunophenotype:
            sample = Sample(
                sample_id=sample_id,
                source_container_id=source,
                volume_ml=volume_ml,
                drawn_at_process_time_s=drawn_s,
            )
            return await self.sim.immunophenotype(sample, panel, operator=operator or "system")

        return act

    # -- behaviour ----------------------------------------------------------------------
    async def operation_ended(self, record: OperationRecord) -> None:
        if record.command != "Immunophenotype" or record.state != "complete":
            return
        result = Immunophenotype.model_validate(record.result)
        at = datetime.fromtimestamp(result.acquired_at_process_time_s, tz=UTC)
        base = self.last_result
        for name, value, vtype in (
            ("SampleId", result.sample_id, _S),
            ("Panel", result.panel, _S),
            ("EventsAcquired", result.events_acquired, ua.VariantType.Int64),
            *((name, getattr(result, field), _D) for name, field in PERCENT_FIELDS.items()),
            ("AcquiredAt", at, ua.VariantType.DateTime),
            ("ResultJson", result.model_dump_json(), _S),
        ):
            await self.write(f"{base}/{name}", value, vtype, at=at)

    def unit_state(self) -> FunctionalState:
        return FunctionalState.RUNNING if self.operations.running else FunctionalState.STOPPED


@asynccontextmanager
async def serve_cytometer(sim: SimFlowCytometer, **options: Any) -> AsyncIterator[CytometerServer]:
    """Serve ``sim`` until the block ends (``server.url`` is where to connect).

    ``options``: ``host``, ``port``, ``security``, ``tune_timers`` (:class:`SimOpcUaServer`).
    """
    server = CytometerServer(sim, **options)
    async with server:
        yield server
