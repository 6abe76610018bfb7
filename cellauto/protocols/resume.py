"""Resuming a run after a controller crash: what its journal says was going on.

A controller that crashes leaves the run's record unsealed: no ``run_ended``. The
instruments carry on (a bioreactor keeps its culture, a freezer its profile). To
resume, :func:`plan_resume` reads the record back: the steps completed, the step in
progress and since when, the instrument commands whose intent was journaled but
whose outcome was not (they may or may not have been carried out), the batch values
recorded so far and the ISA-88 state. :func:`check_resumable` then refuses what
cannot be resumed safely: an ended run, another protocol (name, version or source),
a line whose instruments are not the ones the run started with.

What happens to the step in progress is the step's ``resume`` policy (see
:class:`cellauto.protocols.definition.ResumePolicy`), applied by
:class:`cellauto.protocols.execution.Execution`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from cellauto.errors import ResumeError
from cellauto.instruments.base import Instrument
from cellauto.protocols.definition import Protocol, StepDefinition
from cellauto.protocols.states import State
from cellauto.records import Record
from cellauto.records import payloads as rec
from cellauto.records.material_payloads import (
    MaterialConsumed,
    MaterialsReserved,
    MaterialUseVoided,
)
from cellauto.records.models import utc_from_epoch_s
from cellauto.records.payloads import InDoubtCommand
from cellauto.records.refs import RecordRef
from cellauto.records.spec import CheckPolicy

if TYPE_CHECKING:
    from cellauto.protocols.tasks import TaskResult

__all__ = [
    "InDoubtCommand",
    "RecordedTask",
    "ResumePlan",
    "ResumedStep",
    "check_resumable",
    "plan_resume",
]

Instruments = Mapping[str, Instrument]

#: A run found in (or on its way to) a final state on resume: its exit status.
_ENDED_BY_STATE = {
    State.COMPLETE: "complete",
    State.STOPPING: "stopped",
    State.STOPPED: "stopped",
    State.ABORTING: "aborted",
    State.ABORTED: "aborted",
}


class ResumedStep(BaseModel):
    """What a step run again after a controller crash learns of its interrupted attempt."""

    attempt: int
    first_started: datetime
    in_doubt: list[InDoubtCommand]
    #: Process time from the run's last record before the crash to the resume.
    since_last_record_s: float


class RecordedTask(BaseModel):
    """The latest attempt of an operator task as the journal has it."""

    opened: rec.TaskOpened
    answered: rec.TaskAnswered | None = None
    verified: rec.TaskVerified | None = None
    voided: bool = False
    """Its verifier rejected the entry: a new attempt is due."""
    ended: str | None = None
    """``expired`` or ``withdrawn``: it can no longer be answered."""
    timed_out: bool = False
    """Its timeout had applied (a deviation was recorded)."""
    consequences: set[str] = set()
    """What the step recorded of the answer after it: ``value``, ``check``, ``identity``."""

    @property
    def closed(self) -> bool:
        """Answered, and verified if it is a two-person task."""
        if self.voided or self.ended or self.answered is None:
            return False
        return self.verified is not None or not self.opened.summary.verify

    @property
    def open(self) -> bool:
        return not (self.closed or self.voided or self.ended)

    @property
    def key(self) -> tuple[str | None, str, str | None]:
        return self.opened.step, self.opened.name, self.opened.key

    def result(self) -> TaskResult:
        """What asking it again returns (it is not asked again)."""
        from cellauto.protocols.tasks import TaskResult

        assert self.answered is not None
        return TaskResult(
            task_id=self.opened.task_id,
            value=self.answered.value,
            performed_by=self.answered.signature,
            verified_by=self.verified.signature if self.verified else None,
            late=self.answered.late or bool(self.verified and self.verified.late),
            consequences_recorded=frozenset(self.consequences),
        )

    def note(self, body: rec.Payload) -> None:
        """Take in a record written after this task was opened."""
        if isinstance(body, rec.TaskAnswered):
            self.answered = body
        elif isinstance(body, rec.TaskVerified):
            self.verified = body
        elif isinstance(body, rec.TaskRejected) and body.cause == "rejected":
            self.voided = True
        elif isinstance(body, rec.TaskExpired | rec.TaskWithdrawn):
            self.ended = "expired" if isinstance(body, rec.TaskExpired) else "withdrawn"


def _consequence(task: RecordedTask, body: rec.Payload) -> None:
    """Note a value, check or identity check recorded for a closed task's name."""
    name, step = task.opened.name, task.opened.step
    if isinstance(body, rec.BatchValue) and (body.step, body.name) == (step, name):
        task.consequences.add("value")
    elif isinstance(body, rec.CheckResult) and (body.step, body.check) == (step, name):
        task.consequences.add("check")
    elif isinstance(body, rec.IdentityCheck) and (body.step, body.check) == (step, name):
        task.consequences.add("identity")
    elif (
        isinstance(body, rec.Deviation)
        and body.step == step
        and body.check.startswith(f"{name}: no answer within ")
    ):
        task.timed_out = True


class ResumePlan(BaseModel):
    """What a run's journal says about where it stopped."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    run_started: rec.RunStarted
    state: State
    completed_steps: list[int]
    #: Index of the step in progress at the crash (None: between steps).
    interrupted_step: int | None
    #: Process time (epoch s) at which the step in progress first started.
    interrupted_step_started_s: float | None
    #: How many times the step in progress has been started (resumes included).
    attempts: int
    in_doubt: list[InDoubtCommand]
    values: dict[str, Any]
    checkpoints: dict[str, Any]
    last_seq: int
    last_process_time_s: float
    resumes: int
    #: Process time (epoch s) at which the last completed step completed.
    last_completed_s: float | None = None
    #: The step_failed record of a step that failed just before the crash (the run was
    #: on its way to its end): the resumed run ends as that failure says.
    failed_step: rec.StepFailed | None = None
    #: The operator tasks of the step in progress (latest attempt of each), in order.
    tasks: list[RecordedTask] = []
    #: The deviation the run was held for (no approved Restart since): see approval.py.
    hold_cause: RecordRef | None = None
    #: The lots reserved for the run when it was claimed (its materials_reserved record).
    reserved: MaterialsReserved | None = None
    #: The run's material uses recorded (not voided), by use key: never consumed again.
    material_uses: dict[str, MaterialConsumed] = {}

    @property
    def open_tasks(self) -> list[RecordedTask]:
        """Tasks still waiting for an answer or a verification: offered again."""
        return [t for t in self.tasks if t.open]

    @property
    def answered_tasks(self) -> list[RecordedTask]:
        """Tasks answered (and verified) before the crash: never asked again."""
        return [t for t in self.tasks if t.closed]

    def task(self, step: str | None, name: str, key: str | None) -> RecordedTask | None:
        """The recorded task a step run again asks for, if the interrupted attempt had it."""
        return next((t for t in self.tasks if t.key == (step, name, key)), None)

    @property
    def next_step(self) -> int:
        """Index of the first step that has not completed."""
        done = set(self.completed_steps)
        return next((i for i in range(len(self.run_started.steps)) if i not in done), -1)

    def ending(self) -> tuple[str, str] | None:
        """(exit status, reason) if the run was on its way to its end at the crash."""
        if self.failed_step is not None:
            return _ending_of(self.failed_step)
        ended = _ENDED_BY_STATE.get(self.state)
        if ended is None:
            return None
        return ended, f"the run had reached {self.state.value} when the controller stopped"

    def record(
        self, steps: Sequence[StepDefinition], by: str, now_s: float, instruments: Instruments
    ) -> rec.RunResumed:
        """The ``run_resumed`` record."""
        interrupted = steps[self.interrupted_step] if self.interrupted_step is not None else None
        return rec.RunResumed(
            resumed_by=by,
            state=self.state.value,
            last_seq=self.last_seq,
            since_last_record_s=self.since_last_record_s(now_s),
            completed_steps=[steps[i].name for i in self.completed_steps],
            interrupted_step=interrupted.name if interrupted else None,
            resume_policy=interrupted.resume.value if interrupted else None,
            in_doubt_commands=self.in_doubt,
            instruments={
                name: rec.EquipmentIdentity(**instrument.identity.model_dump())
                for name, instrument in instruments.items()
            },
            instrument_errors_at_connect={
                name: list(instrument.errors_at_connect)
                for name, instrument in instruments.items()
                if instrument.errors_at_connect
            },
        )

    def alarm(self, steps: Sequence[StepDefinition], now_s: float) -> str:
        """The alarm raised on resume, for the operators."""
        text = (
            f"run resumed after a controller restart, {self.since_last_record_s(now_s) / 60:.0f} "
            f"min after its last record, in state {self.state.value}"
        )
        if self.interrupted_step is not None:
            text += f", step {steps[self.interrupted_step].name!r} was in progress"
        if self.in_doubt:
            text += f", {len(self.in_doubt)} instrument command(s) in doubt"
        return text

    def operator_hold_reason(self, step: StepDefinition) -> str:
        """Why an ``operator`` step in progress at the crash holds the run."""
        doubts = "; ".join(f"{c.instrument}.{c.method} (#{c.seq})" for c in self.in_doubt)
        return (
            f"step {step.name!r} was in progress when the controller stopped"
            + (f"; in doubt: {doubts}" if doubts else "")
            + "; check the equipment, then Restart to run the step again, or Stop or Abort"
        )

    def resumed_step(self, now_s: float) -> ResumedStep:
        """What the interrupted step, run again, learns of its interrupted attempt."""
        return ResumedStep(
            attempt=self.attempts + 1,
            first_started=utc_from_epoch_s(self.interrupted_step_started_s or now_s),
            in_doubt=self.in_doubt,
            since_last_record_s=self.since_last_record_s(now_s),
        )

    def since_last_record_s(self, now_s: float) -> float:
        return max(0.0, now_s - self.last_process_time_s)


def plan_resume(records: list[Record]) -> ResumePlan:
    """Read a run's records (in seq order) into a :class:`ResumePlan`; ResumeError if ended."""
    first = records[0].payload if records else None
    if not isinstance(first, rec.RunStarted):
        raise ResumeError("the run's record does not begin with run_started; it cannot be resumed")
    run_id = records[0].run_id
    state = State.IDLE
    completed: list[int] = []
    interrupted: int | None = None
    interrupted_started: float | None = None
    attempts = 0
    commands: dict[int, InDoubtCommand] = {}
    values: dict[str, Any] = {}
    checkpoints: dict[str, Any] = {}
    resumes = 0
    last_completed: float | None = None
    failed: rec.StepFailed | None = None
    tasks: dict[tuple[str | None, str, str | None], RecordedTask] = {}
    by_id: dict[str, RecordedTask] = {}
    hold_cause: RecordRef | None = None
    reserved: MaterialsReserved | None = None
    uses: dict[str, MaterialConsumed] = {}
    for record in records:
        body = record.payload
        if isinstance(body, rec.RunEnded):
            raise ResumeError(
                f"run {run_id} has ended ({body.exit_status}, {body.final_state}); "
                "an ended run cannot be resumed: start a new run"
            )
        if isinstance(body, rec.StateChange):
            state = State(body.to_state)
        elif isinstance(body, rec.StepStarted):
            failed = None
            if body.index != interrupted:
                interrupted, interrupted_started, attempts = body.index, None, 0
                commands, tasks, by_id = {}, {}, {}
            if interrupted_started is None:
                interrupted_started = record.process_time_s
            attempts += 1
        elif isinstance(body, rec.StepCompleted | rec.StepFailed):
            if isinstance(body, rec.StepCompleted):
                completed.append(body.index)
                last_completed = record.process_time_s
            else:
                failed = body
            interrupted, interrupted_started, attempts, commands = None, None, 0, {}
            tasks, by_id = {}, {}
        elif isinstance(body, rec.InstrumentCommand):
            commands[record.seq] = InDoubtCommand(
                seq=record.seq,
                instrument=body.instrument,
                method=body.method,
                arguments=body.arguments,
                attempt=attempts,
            )
        elif isinstance(body, rec.InstrumentResponse) and not body.outcome_unknown:
            if body.command_seq is not None:
                commands.pop(body.command_seq, None)
        elif isinstance(body, rec.BatchValue):
            values[body.name] = body.value
        elif isinstance(body, rec.Checkpoint):
            checkpoints[body.name] = body.value
        elif isinstance(body, rec.RunResumed):
            resumes += 1
        elif isinstance(body, MaterialsReserved):
            reserved = body
        elif isinstance(body, MaterialConsumed):
            uses[body.use_key] = body
        elif isinstance(body, MaterialUseVoided):
            uses.pop(body.use_key, None)
        elif isinstance(body, rec.Deviation) and body.policy is CheckPolicy.HOLD:
            if state in (State.RUNNING, State.RESTARTING, State.HOLDING, State.HELD):
                hold_cause = RecordRef(
                    chain="run", run_id=run_id, seq=record.seq, hash=record.hash, kind=record.kind
                )
        elif isinstance(body, rec.Command) and body.command == "Restart" and body.accepted:
            hold_cause = None
        if isinstance(body, rec.TaskOpened):
            task = by_id[body.task_id] = RecordedTask(opened=body)
            tasks[task.key] = task
        elif (task_id := getattr(body, "task_id", None)) is not None and task_id in by_id:
            by_id[task_id].note(body)
        else:
            for task in tasks.values():
                _consequence(task, body)
    last = records[-1]
    return ResumePlan(
        run_id=run_id,
        run_started=first,
        state=state,
        completed_steps=completed,
        interrupted_step=interrupted,
        interrupted_step_started_s=interrupted_started,
        attempts=attempts,
        in_doubt=list(commands.values()),
        values=values,
        checkpoints=checkpoints,
        last_seq=last.seq,
        last_process_time_s=last.process_time_s,
        resumes=resumes,
        last_completed_s=last_completed,
        failed_step=failed,
        tasks=list(tasks.values()),
        hold_cause=hold_cause,
        reserved=reserved,
        material_uses=uses,
    )


def _ending_of(failed: rec.StepFailed) -> tuple[str, str]:
    """(exit status, reason) of a run whose step failed as ``failed`` (step_failed) says."""
    if failed.error_type == "stopped":
        return "stopped", "stopped by command"
    if failed.error_type == "cancelled":
        return "aborted", "aborted by command"
    if failed.error_type == "RunAborted":  # a check or the protocol aborted the run
        return "aborted", failed.error
    return "failed", f"{failed.error_type}: {failed.error}"


def check_resumable(
    plan: ResumePlan,
    protocol: Protocol,
    source_sha256: str | None,
    identities: Mapping[str, rec.EquipmentIdentity],
) -> None:
    """Refuse (ResumeError) a resume under another protocol or other instruments.

    ``identities`` are the identities of the line's instruments now, by equipment name,
    as recorded in run_started.
    """
    started = plan.run_started
    recorded = (
        started.protocol_name,
        started.protocol_version,
        started.protocol_source_sha256,
    )
    now = (protocol.name, protocol.version, source_sha256)
    for what, before, after in zip(
        ("name", "version", "source SHA-256"), recorded, now, strict=True
    ):
        if before != after:
            raise ResumeError(
                f"run {plan.run_id} was started with protocol {what} {before!r}, not {after!r}; "
                "a batch cannot change its procedure midway: resume it with the protocol file "
                "it started with"
            )
    for name, was in started.instruments.items():
        current = identities.get(name)
        if current is None:
            raise ResumeError(
                f"run {plan.run_id} needs its {name!r} ({was.interface}); the line has none"
            )
        for field in ("vendor", "model", "serial"):
            if getattr(was, field) != getattr(current, field):
                raise ResumeError(
                    f"run {plan.run_id}: {name!r} is {getattr(current, field)!r} ({field}) where "
                    f"the run started with {getattr(was, field)!r}; a batch resumes on the "
                    "instruments holding its material"
                )
