"""Simulated closed-system cell processor (Prodigy/Sepax-like) running long programs.

A program takes its input from the source container when it starts and draws its
random outcome at once, so the same seed gives the same batch however often it is
polled. Progress is computed lazily from process time; the output container(s) enter
the world at the scheduled end (a loop timer, so other instruments find them even if
nobody polls). Aborting returns the unprocessed input to the source container.
The programs and their models (figures, the wash over capacity):
:mod:`cellauto.sim.processor_models`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import anyio

from cellauto.errors import InstrumentError, OutOfRangeError
from cellauto.instruments.base import require_range
from cellauto.instruments.cell_processor import (
    CellProcessor,
    ProgramInputs,
    ProgramResult,
    ProgramState,
    ProgramStatus,
    ProgramTemplate,
)
from cellauto.instruments.limits import LimitFlag
from cellauto.instruments.materials import Sample
from cellauto.sim.action_log import note_repeat
from cellauto.sim.base import SimInstrument, sim_identity
from cellauto.sim.material import Container
from cellauto.sim.processor_models import (
    PHASES,
    PROGRAM_TEMPLATES,
    WASH_CAPACITY_CELLS,
    Processed,
    process,
)
from cellauto.sim.world import SimWorld

__all__ = ["PROGRAM_TEMPLATES", "WASH_CAPACITY_CELLS", "SimCellProcessor"]

logger = logging.getLogger(__name__)


@dataclass
class _Run:
    run_id: str
    task_id: str
    template: ProgramTemplate
    inputs: ProgramInputs
    source: Container
    material: Container  # what the processor took from the source
    outputs: list[Container]
    started_mono_s: float = 0.0
    started_s: float = 0.0
    state: ProgramState = "running"
    ended_mono_s: float | None = None
    result: ProgramResult | None = None
    timer: asyncio.TimerHandle | None = None
    limit_flags: list[LimitFlag] = field(default_factory=list)
    failure: str | None = None  # the program fails at its end, the input returned

    @property
    def duration_s(self) -> float:
        return self.template.typical_duration_h * 3600.0


class SimCellProcessor(SimInstrument, CellProcessor):
    """One tubing set, one program at a time; runs the programs of PROGRAM_TEMPLATES.

    ``cryoprotectant_dmso_pct`` is the DMSO in the cryoprotectant FORMULATE_FILL adds
    (10: CryoStor CS10); diluent makes up the rest of the final volume.
    """

    def __init__(
        self, world: SimWorld, serial: str = "CP-0001", *, cryoprotectant_dmso_pct: float = 10.0
    ) -> None:
        super().__init__(world, sim_identity("SimProcessor CP", serial))
        self.cryoprotectant_dmso_pct = cryoprotectant_dmso_pct
        self._runs: dict[str, _Run] = {}
        self._by_task: dict[str, str] = {}
        self._active: _Run | None = None

    async def programs(self) -> list[ProgramTemplate]:
        self.guard("programs", command=False)
        return [t.model_copy(deep=True) for t in PROGRAM_TEMPLATES.values()]

    async def start_program(
        self, template_id: str, inputs: ProgramInputs, supervisory_task_id: str
    ) -> str:
        self.guard("start_program", command=True)
        self._refresh()
        if (known := self._by_task.get(supervisory_task_id)) is not None:
            run = self._runs[known]
            if (run.template.template_id, run.inputs) != (template_id, inputs):
                raise InstrumentError(
                    f"{self.where}: supervisory task {supervisory_task_id!r} already started "
                    f"run {known} ({run.template.template_id}) with other inputs; use a new id"
                )
            note_repeat(f"program run {known}, started for this supervisory task")
            return known
        template = PROGRAM_TEMPLATES.get(template_id)
        if template is None:
            known_ids = ", ".join(PROGRAM_TEMPLATES)
            raise InstrumentError(
                f"{self.where}: unknown program {template_id!r}; known: {known_ids}"
            )
        if self._active is not None:
            raise InstrumentError(
                f"{self.where}: run {self._active.run_id} ({self._active.template.template_id}) "
                "is running; wait for it to end or abort it before starting another program"
            )
        source = self.world.container(inputs.source_container_id, where=self.where)
        if source.volume_ml <= 0 or source.viable_cells <= 0:
            raise InstrumentError(f"{self.where}: source {source.container_id!r} holds no cells")
        params = self._parameters(template, inputs, source)
        out_ids = [inputs.output_container_id]
        if (bags := int(params.get("bag_count", 1))) > 1:
            out_ids = [f"{inputs.output_container_id} {i}" for i in range(1, bags + 1)]
        if taken := [repr(i) for i in out_ids if i in self.world.containers]:
            raise InstrumentError(
                f"{self.where}: output container {', '.join(taken)} already exists on the line; "
                "name a new output container"
            )
        material, outputs, done = self._process(template_id, source, params, out_ids)
        run_id = f"{self.identity.serial}-RUN{len(self._runs) + 1:04d}"
        run = _Run(run_id, supervisory_task_id, template, inputs, source, material, outputs)
        run.limit_flags, run.failure = done.limit_flags, done.failure
        run.started_mono_s, run.started_s = self._mono(), self.world.clock.now_s()
        run.timer = asyncio.get_running_loop().call_at(
            run.started_mono_s + run.duration_s, self._end, run, "complete"
        )
        self._runs[run_id], self._by_task[supervisory_task_id] = run, run_id
        self._active = run
        logger.info(
            "%s: %s started %s (task %s)", self.where, run_id, template_id, supervisory_task_id
        )
        return run_id

    def _parameters(
        self, template: ProgramTemplate, inputs: ProgramInputs, source: Container
    ) -> dict[str, float]:
        """Fixed limits from the template, then the limits that depend on the source."""
        params = template.resolve_parameters(self, inputs.parameters)
        if template.template_id == "WASH_CONCENTRATE":
            taken = params.setdefault("input_volume_ml", source.volume_ml)
            require_range(self, "input_volume_ml", taken, low=1.0, high=source.volume_ml, unit="mL")
            # no check of the cells: a washer cannot count them (over capacity: flagged)
        if template.template_id == "FORMULATE_FILL":
            if params["bag_count"] != int(params["bag_count"]):
                raise OutOfRangeError(f"{self.where}: bag_count must be a whole number 1..4")
            product = params.setdefault("product_volume_ml", source.volume_ml)
            require_range(
                self, "product_volume_ml", product, low=0.1, high=source.volume_ml, unit="mL"
            )
            room = 1.0 - params["dmso_pct"] / self.cryoprotectant_dmso_pct
            least = product / room if room > 0 else float("inf")
            final = params.setdefault("final_volume_ml", max(least, 10.0))
            if not least <= final <= 500.0:
                raise OutOfRangeError(
                    f"{self.where}: final_volume_ml {final:g} mL is outside the limit "
                    f"{least:g}..500 mL: {params['dmso_pct']:g} % DMSO from a "
                    f"{self.cryoprotectant_dmso_pct:g} % DMSO cryoprotectant leaves at most "
                    f"{100 * max(room, 0):g} % of the final volume for product"
                )
        return params

    def _process(
        self, tid: str, source: Container, params: dict[str, float], out_ids: list[str]
    ) -> tuple[Container, list[Container], Processed]:
        """Take the input and draw the outcome (the outputs enter the world at the end)."""
        volume = params.get("product_volume_ml", params.get("input_volume_ml", source.volume_ml))
        material = source.take(volume, f"{self.identity.serial} in-process")
        done = process(tid, material, params, self.rng)
        out = done.out
        per_bag_ml = out.volume_ml / len(out_ids)
        outputs = [out.take(per_bag_ml, bag) for bag in out_ids]
        for bag in outputs:  # the product keeps its chain-of-identity label
            bag.label, bag.history = source.label, [*material.history, f"{tid} on {self.where}"]
        return material, outputs, done

    def _end(self, run: _Run, state: ProgramState) -> None:
        """End ``run``: complete (outputs enter the world) or aborted (input back to source)."""
        if run.state != "running":
            return
        if run.timer is not None:
            run.timer.cancel()
        complete = state == "complete"
        run.ended_mono_s = run.started_mono_s + run.duration_s if complete else self._mono()
        if clash := [
            o.container_id for o in run.outputs if o.container_id in self.world.containers
        ]:
            state, message = "failed", f"output {clash[0]!r} appeared meanwhile; product held"
        elif complete and run.failure is not None:
            run.source.add(run.material)
            state = "failed"
            message = f"{run.failure}; the input was returned to {run.source.container_id!r}"
        elif complete:
            for output in run.outputs:
                self.world.add_container(output)
            message = f"{run.template.name} complete"
        else:
            run.source.add(run.material)
            message = f"aborted; the unprocessed input was returned to {run.source.container_id!r}"
        run.state, self._active = state, None
        done = run.outputs if state == "complete" else []
        viable = sum(o.viable_cells for o in done)
        total = viable + sum(o.dead_cells for o in done)
        if done:
            message += f": {viable:.3g} viable cells in {', '.join(o.container_id for o in done)}"
        run.result = ProgramResult(
            device_program_run_id=run.run_id,
            supervisory_task_id=run.task_id,
            template_id=run.template.template_id,
            success=state == "complete",
            output_container_id=done[0].container_id if done else None,
            output_container_ids=[o.container_id for o in done],
            output_volume_ml=sum(o.volume_ml for o in done),
            viable_cells=viable,
            total_cells=total,
            viability_pct=100.0 * viable / total if total > 0 else 0.0,
            message=message,
            limit_flags=run.limit_flags,
        )
        logger.info("%s: %s %s: %s", self.where, run.run_id, state, message)

    def _mono(self) -> float:
        return self.world.clock.monotonic()

    def _refresh(self) -> None:
        run = self._active
        if run is not None and self._mono() >= run.started_mono_s + run.duration_s:
            self._end(run, "complete")

    def _run(self, run_id: str) -> _Run:
        self._refresh()
        if run_id not in self._runs:
            known = ", ".join(self._runs) or "none"
            raise InstrumentError(f"{self.where}: no program run {run_id!r}; known: {known}")
        return self._runs[run_id]

    def _status(self, run: _Run) -> ProgramStatus:
        now = self._mono() if run.ended_mono_s is None else run.ended_mono_s
        fraction = min(max((now - run.started_mono_s) / run.duration_s, 0.0), 1.0)
        phases = PHASES[run.template.template_id]
        phase = phases[min(int(fraction * len(phases)), len(phases) - 1)]
        ended_s = None if run.ended_mono_s is None else run.started_s + now - run.started_mono_s
        return ProgramStatus(
            device_program_run_id=run.run_id,
            supervisory_task_id=run.task_id,
            template_id=run.template.template_id,
            state=run.state,
            progress_pct=100.0 * fraction,
            phase="complete" if run.state == "complete" else phase,
            started_process_time_s=run.started_s,
            ended_process_time_s=ended_s,
        )

    async def program_status(self, device_program_run_id: str) -> ProgramStatus:
        self.guard("program_status", command=False)
        return self._status(self._run(device_program_run_id))

    async def active_program(self) -> ProgramStatus | None:
        self.guard("active_program", command=False)
        self._refresh()
        return self._status(list(self._runs.values())[-1]) if self._runs else None

    async def program_result(self, device_program_run_id: str) -> ProgramResult:
        self.guard("program_result", command=False)
        run = self._run(device_program_run_id)
        if run.result is None:
            status = self._status(run)
            raise InstrumentError(
                f"{self.where}: run {run.run_id} is still running ({status.progress_pct:.0f} %, "
                f"{status.phase}); poll program_status until it has ended"
            )
        return run.result

    async def abort_program(self, device_program_run_id: str) -> ProgramStatus:
        self.guard("abort_program", command=True)
        run = self._run(device_program_run_id)
        if run.state in ("complete", "failed"):
            raise InstrumentError(f"{self.where}: run {run.run_id} has already ended ({run.state})")
        self._end(run, "aborted")
        return self._status(run)

    async def draw_sample(self, container_id: str, volume_ml: float) -> Sample:
        self.guard("draw_sample", command=True)
        self._refresh()
        container = self.world.container(container_id, where=self.where)
        require_range(self, "volume_ml", volume_ml, low=0.1, high=5.0, unit="mL")
        name = f"volume_ml (from {container_id!r})"
        require_range(self, name, volume_ml, high=container.volume_ml, unit="mL")
        await anyio.sleep(60.0)
        return self.world.draw_sample(container, volume_ml, prefix=self.identity.serial)
