"""CellProcessor: a closed-system processor (Prodigy/Sepax-like) running long programs.

Naming loosely follows the OPC UA LADS program manager: the instrument offers
:class:`ProgramTemplate` s; ``start_program`` (StartProgram) takes the caller's
``supervisory_task_id`` (SupervisoryTaskId, also the idempotency key: the same id never
starts a second program) and returns a device program run id (DeviceProgramRunId);
``program_status`` / ``active_program`` report progress and ``program_result`` the
Result once the program has ended.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from typing import Literal

import anyio
from pydantic import BaseModel, ConfigDict, Field

from cellauto.errors import OutOfRangeError
from cellauto.instruments.base import Instrument, command, composite, query, require_range
from cellauto.instruments.limits import LimitFlag
from cellauto.instruments.materials import Sample

__all__ = [
    "CellProcessor",
    "LimitFlag",
    "ProgramInputs",
    "ProgramParameter",
    "ProgramResult",
    "ProgramState",
    "ProgramStatus",
    "ProgramTemplate",
]

ProgramState = Literal["running", "complete", "failed", "aborted"]


class ProgramParameter(BaseModel):
    """One numeric parameter a program accepts, with its limits (None: no fixed limit)."""

    model_config = ConfigDict(frozen=True)

    name: str
    unit: str = ""
    default: float | None = Field(None, description="None: derived from the inputs")
    low: float | None = None
    high: float | None = None
    description: str = ""


class ProgramTemplate(BaseModel):
    """A program the processor offers (LADS ProgramTemplate)."""

    model_config = ConfigDict(frozen=True)

    template_id: str
    name: str
    description: str
    typical_duration_h: float = Field(gt=0)
    parameters: list[ProgramParameter] = Field(default_factory=list)

    def resolve_parameters(
        self, instrument: Instrument, given: Mapping[str, float]
    ) -> dict[str, float]:
        """``given`` with the defaults filled in; refuses unknown names and values outside
        the fixed limits (an instrument checks limits that depend on the inputs itself)."""
        specs = {p.name: p for p in self.parameters}
        if unknown := sorted(set(given) - set(specs)):
            raise OutOfRangeError(
                f"{instrument.interface_name} {instrument.identity.serial}: {self.template_id} "
                f"has no parameter {', '.join(unknown)}; known: {', '.join(specs) or 'none'}"
            )
        for name, value in given.items():
            spec = specs[name]
            require_range(instrument, name, value, low=spec.low, high=spec.high, unit=spec.unit)
        defaults = {n: p.default for n, p in specs.items() if p.default is not None}
        return defaults | dict(given)


class ProgramInputs(BaseModel):
    """What a program works on: the source container, the output id, parameters."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source_container_id: str = Field(min_length=1)
    output_container_id: str = Field(min_length=1)
    parameters: dict[str, float] = Field(default_factory=dict)


class ProgramStatus(BaseModel):
    """Where a program run stands (LADS ActiveProgram)."""

    model_config = ConfigDict(frozen=True)

    device_program_run_id: str
    supervisory_task_id: str
    template_id: str
    state: ProgramState
    progress_pct: float = Field(ge=0, le=100)
    phase: str
    started_process_time_s: float
    ended_process_time_s: float | None = None


class ProgramResult(BaseModel):
    """The outcome of a program run that has ended (LADS Result)."""

    model_config = ConfigDict(frozen=True)

    device_program_run_id: str
    supervisory_task_id: str
    template_id: str
    success: bool
    output_container_id: str | None = Field(
        description="the (first) output container; None when nothing was produced"
    )
    output_container_ids: list[str] = Field(default_factory=list)
    output_volume_ml: float = Field(ge=0)
    viable_cells: float = Field(ge=0)
    total_cells: float = Field(ge=0)
    viability_pct: float = Field(ge=0, le=100)
    message: str
    limit_flags: list[LimitFlag] = Field(
        default_factory=list, description="limits the program met or passed (a wash over capacity)"
    )


class CellProcessor(Instrument):
    interface_name = "CellProcessor"

    @query
    @abstractmethod
    async def programs(self) -> list[ProgramTemplate]:
        """The program templates this processor offers."""

    @command
    @abstractmethod
    async def start_program(
        self, template_id: str, inputs: ProgramInputs, supervisory_task_id: str
    ) -> str:
        """Start a program; returns its device program run id.

        Idempotent: a second call with the same ``supervisory_task_id`` (and the same
        request) returns the same run id and starts nothing. Refuses an unknown template,
        a missing source, an existing output container, a parameter outside its limits
        and a second program while one is running.
        """

    @query
    @abstractmethod
    async def program_status(self, device_program_run_id: str) -> ProgramStatus:
        """State, progress and phase of a program run."""

    @query
    @abstractmethod
    async def active_program(self) -> ProgramStatus | None:
        """The running program, else the last one run; None if none ever ran."""

    @query
    @abstractmethod
    async def program_result(self, device_program_run_id: str) -> ProgramResult:
        """The result of a program run that has ended (an error while it runs)."""

    @command
    @abstractmethod
    async def abort_program(self, device_program_run_id: str) -> ProgramStatus:
        """Abort a running program; aborting an aborted program returns its status."""

    @command
    @abstractmethod
    async def draw_sample(self, container_id: str, volume_ml: float) -> Sample:
        """Draw a sample (0.1..5 mL) through the aseptic sampling port."""

    @composite
    async def run_program(
        self,
        template_id: str,
        inputs: ProgramInputs,
        supervisory_task_id: str,
        poll_interval_s: float = 600.0,
    ) -> ProgramResult:
        """Start a program, poll its status every ``poll_interval_s`` until it has ended,
        and return its result (collected at the first poll after the end)."""
        if poll_interval_s <= 0:
            raise OutOfRangeError(
                f"{self.interface_name} {self.identity.serial}: poll_interval_s "
                f"{poll_interval_s:g} s is below the limit; it must be > 0 s"
            )
        run_id = await self.start_program(template_id, inputs, supervisory_task_id)
        while True:
            status = await self.program_status(run_id)
            if status.state != "running":
                return await self.program_result(run_id)
            await anyio.sleep(poll_interval_s)
