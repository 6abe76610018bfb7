"""One run of a protocol on a line: ISA-88 states, the step loop and its records.

An :class:`Execution` is made by :meth:`cellauto.protocols.runner.Runner.prepare`
(which has already validated parameters and equipment) and driven by
:meth:`execute`. Commands (Hold, Restart, Stop, Abort, Reset) arrive through
:meth:`command` from operators, the API or the runner's own policies; each is
journaled, accepted or refused.

Semantics:

* **Hold** puts the run in Holding; it becomes Held at the next hold point — the
  next instrument command, the next step, or ``run.hold_point()`` — and waits there
  for Restart (back to Running), Stop or Abort. A step in progress is never cut
  short by Hold: no physical action is interrupted, none is started.
* **Stop** ends the procedure at the next hold point (Stopping, then Stopped).
* **Abort** cancels the step in progress at once (Aborting, then Aborted).
* A failed check records a Deviation and, by its policy, holds, continues or aborts.
* A step that raises records the failure and an alarm, then aborts the run with exit
  status ``failed``. Nothing a run does can disturb another run.

Journaling a record and telling the observers is :class:`.run_records.RunRecords`
(a base of ``Execution``); the steps in order, each with its records and watchdogs,
and the step interrupted by a crash run again, are :mod:`.procedure`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import anyio

from cellauto.clock import Clock, time_paused
from cellauto.errors import FencedError, PermissionRefusedError, StateCommandError
from cellauto.protocols.approval import restart_approval
from cellauto.protocols.bom_check import BomPlan
from cellauto.protocols.containers import RunContainers
from cellauto.protocols.context import Run, RunAborted
from cellauto.protocols.definition import Protocol, StepDefinition
from cellauto.protocols.materials import end_materials, materials_reserved
from cellauto.protocols.outcome import RunOutcome, RunStopped, fenced_error
from cellauto.protocols.params import Params
from cellauto.protocols.procedure import run_procedure
from cellauto.protocols.recording import RecordedInstrument
from cellauto.protocols.resume import ResumedStep, ResumePlan
from cellauto.protocols.run_records import RUNNER, Observer, RunRecords
from cellauto.protocols.spec import CheckPolicy
from cellauto.protocols.states import (
    ACTIVE_STATES,
    AUTOMATIC,
    Command,
    State,
    allowed_commands,
    next_state,
)
from cellauto.protocols.tasks import Answerer, Authority, TaskBoard
from cellauto.records import RunJournal
from cellauto.records import payloads as rec
from cellauto.records._txops import TxOp
from cellauto.records.material_payloads import EquipmentChecked
from cellauto.records.refs import RecordRef, SignatureShown, SiteRef
from cellauto.records.release_plan import ReleasePlan
from cellauto.site.view import SiteView

__all__ = ["Execution", "Observer", "RunOutcome"]

logger = logging.getLogger(__name__)


class Execution(RunRecords):
    """A prepared run. Call :meth:`execute` once; send commands with :meth:`command`."""

    def __init__(
        self,
        *,
        run_id: str,
        protocol: Protocol,
        params: Params,
        journal: RunJournal,
        clock: Clock,
        instruments: dict[str, Any],
        run_started: rec.RunStarted,
        observers: list[Observer],
        resume: ResumePlan | None = None,
        claimed: rec.ControllerClaimed | None = None,
        answerers: Sequence[Answerer] = (),
        authority: Authority | None = None,
        site: SiteView | None = None,
    ) -> None:
        self.run_id = run_id
        #: Where the run's materials and instruments are checked; None: no site checks.
        self.site = site
        #: The instruments checked against the registry by prepare (journaled at the start),
        #: and the registry asset the line ties each to (:mod:`.equipment_check`).
        self.equipment_checked: list[EquipmentChecked] = []
        #: The release tests frozen for a new run (Runner.prepare; never on resume).
        self.release_plan: ReleasePlan | None = None
        self.equipment_assets: dict[str, str] = {}
        #: The lots reserved for a new run (set by Runner.prepare; see bom_check.py).
        self.bom: BomPlan | None = None
        self.protocol = protocol
        self.params = params
        self.clock = clock
        self._journal = journal
        self._run_started = run_started
        self._claimed = claimed  # journaled after run_started or run_resumed
        self._observers = observers
        self.state = State.IDLE
        self._state_changed = anyio.Event()
        self.current_step: StepDefinition | None = None
        self.completed_steps = 0
        self.values: dict[str, Any] = {}
        #: Resume bookkeeping (run.every iterations done, additions made), by name.
        self.checkpoints: dict[str, Any] = {}
        #: After a controller crash: what the journal said (see :mod:`.resume`).
        self.resume_plan = resume
        #: While the step that was interrupted runs again: how it was interrupted.
        self.resumed: ResumedStep | None = None
        #: The deviation the run holds for: Restart needs a supervisor's approval.
        self.hold_cause: RecordRef | None = resume.hold_cause if resume is not None else None
        #: The seq of the last Command record (accepted or refused).
        self.last_command_seq: int | None = None
        #: Process time (epoch s) at which the current step first started.
        self.step_started_s: float | None = None
        self._procedure_scope: anyio.CancelScope | None = None
        self._watchdogs: anyio.abc.TaskGroup | None = None
        self._started = False
        self.equipment = {
            name: RecordedInstrument(name, instrument, self)
            for name, instrument in instruments.items()
        }
        #: The run's declared containers (``run.containers``).
        self.containers = RunContainers(self)
        self.context = Run(self)
        #: The run's operator tasks (``run.confirm``, ``run.enter``) and who answers them.
        self.tasks = TaskBoard(
            self, operators=run_started.operators, answerers=answerers, authority=authority
        )

    @property
    def current_step_name(self) -> str | None:
        return self.current_step.name if self.current_step else None

    # -- records ---------------------------------------------------------------------
    def record_ref(self, payload: rec.Payload) -> RecordRef:
        """Journal one record (as :meth:`record`) and return a reference to it."""
        seq, digest = self._journal.append(payload, durable=False, wait=False)
        self._observe(payload)
        return RecordRef(
            chain="run", run_id=self.run_id, seq=seq, hash=digest, kind=payload.kind.value
        )

    async def record_durable_ref(self, payload: rec.Payload) -> RecordRef:
        """Journal one record durably (as :meth:`record_durable`); a reference to it."""
        with time_paused():
            seq, digest = await self._journal.append_durable(payload)
        self._observe(payload)
        return RecordRef(
            chain="run", run_id=self.run_id, seq=seq, hash=digest, kind=payload.kind.value
        )

    async def run_ops(self, ops: Sequence[TxOp]) -> list[object]:
        """Commit ``ops`` with the records appended so far (one fsync'd commit)."""
        with time_paused():
            return await self._journal.run_ops(ops)

    def deviation(
        self,
        step: str | None,
        check: str,
        description: str,
        policy: CheckPolicy,
        *,
        value: float | None = None,
    ) -> None:
        """Record a Deviation and apply a hold policy (abort is the caller's to raise)."""
        deviation = rec.Deviation(
            step=step, check=check, description=description, policy=policy, value=value
        )
        seq, digest = self._journal.append(deviation, durable=True, wait=False)
        self._observe(deviation)
        logger.warning("run %s deviation: %s", self.run_id, description)
        if policy is CheckPolicy.HOLD and self.state in ACTIVE_STATES - {State.STOPPING}:
            # Restart needs a supervisor's approval from here on (cellauto.protocols.approval)
            self.hold_cause = RecordRef(
                chain="run", run_id=self.run_id, seq=seq, hash=digest, kind=deviation.kind.value
            )
        if policy is CheckPolicy.HOLD and self.state in (State.RUNNING, State.RESTARTING):
            self._transition(Command.HOLD, by=RUNNER, reason=f"deviation: {description}")

    async def journal_run_ops(self, ops: Sequence[TxOp]) -> list[object]:
        """Commit the run's records so far with ``ops`` (one fsync'd transaction)."""
        return await self._journal.run_ops(ops)

    # -- state machine -----------------------------------------------------------------
    def _set_state(self, new: State, cause: str) -> None:
        old, self.state = self.state, new
        self.record(
            rec.StateChange(
                from_state=old.value, to_state=new.value, cause=cause, step=self.current_step_name
            ),
            durable=True,
        )
        event, self._state_changed = self._state_changed, anyio.Event()
        event.set()

    def _record_command(
        self,
        command: Command,
        by: str,
        reason: str,
        refusal: str | None = None,
        signature: SignatureShown | None = None,
        request: SiteRef | None = None,
    ) -> None:
        self.last_command_seq = self.record(
            rec.Command(
                command=command.value,
                state=self.state.value,
                accepted=refusal is None,
                by=by,
                reason=reason,
                refusal=refusal,
                signature=signature,
                request=request,
            )
        )

    def _transition(
        self,
        command: Command,
        *,
        by: str,
        reason: str = "",
        approval: SignatureShown | None = None,
        request: SiteRef | None = None,
    ) -> State:
        try:
            new = next_state(self.state, command)
        except StateCommandError as exc:
            self._record_command(
                command, by, reason, refusal=str(exc), signature=approval, request=request
            )
            raise
        if command is Command.RESTART and self.hold_cause is not None:
            approval, refusal = restart_approval(
                self.hold_cause,
                approval,
                reason,
                operators=self.tasks.operators,
                authority=self.tasks.authority,
                now_s=self.clock.now_s(),
            )
            if refusal is not None:
                self._record_command(
                    command, by, reason, refusal=refusal, signature=approval, request=request
                )
                raise PermissionRefusedError(refusal)
            self.hold_cause = None
        self._record_command(command, by, reason, signature=approval, request=request)
        self._set_state(new, f"{command.value} by {by}" + (f": {reason}" if reason else ""))
        if new in (State.STOPPING, State.ABORTING):
            self.tasks.withdraw_all(f"{command.value} by {by}" + (f": {reason}" if reason else ""))
        return new

    def command(
        self,
        command: Command | str,
        *,
        by: str,
        reason: str = "",
        approval: SignatureShown | None = None,
        request: SiteRef | None = None,
    ) -> State:
        """Apply an ISA-88 command; refused commands raise StateCommandError (and are journaled).

        Restart after a deviation needs ``approval`` (a supervisor's signature meaning
        approved) and a reason, else it is refused with PermissionRefusedError (journaled
        too); see :mod:`cellauto.protocols.approval`. ``request``: the site record of a
        command requested from another terminal (``approval`` then carries the
        requester's signature, or the supervisor's approval of a Restart).

        Before :meth:`execute` nothing may be written, so a command then is refused
        without a record. A run starts once, through :meth:`execute`; after Reset the
        run is over (a new batch is a new run), so Start is always refused here.
        """
        command = Command(command)
        if not self._started or command is Command.START:
            allowed = [c.value for c in allowed_commands(self.state) if c is not Command.START]
            exc = StateCommandError(command.value, self.state.value, allowed)
            if self._started:
                self._record_command(
                    command, by, reason, refusal=f"{exc}; start a new run with Runner.prepare()"
                )
            raise exc
        new = self._transition(command, by=by, reason=reason, approval=approval, request=request)
        if new is State.ABORTING and self._procedure_scope is not None:
            self._procedure_scope.cancel()
        return new

    def close(self) -> str:
        """Seal the run's chain (no record may follow); returns the head hash.

        Call after :meth:`execute` (and any Reset); the seal lets ``verify`` detect
        records cut from the end of the run.
        """
        return self._journal.seal()

    def _complete_acting_state(self, cause: str) -> None:
        target = AUTOMATIC.get(self.state)
        if target is not None:
            self._set_state(target, cause)

    async def hold_point(self) -> None:
        """Hold here while Holding/Held; stop here after Stop; continue otherwise."""
        while True:
            state = self.state
            if state is State.RUNNING:
                return
            if state is State.HOLDING:
                self._set_state(State.HELD, "hold point reached")
                continue
            if state is State.RESTARTING:
                self._set_state(State.RUNNING, "restart complete")
                return
            if state is State.STOPPING:
                raise RunStopped()
            if state is State.HELD:
                await self._state_changed.wait()
                continue
            # Aborting: the procedure scope is being cancelled; let it land.
            await anyio.sleep_forever()

    # -- procedure -----------------------------------------------------------------------
    async def execute(
        self, *, by: str = RUNNER, signature: SignatureShown | None = None
    ) -> RunOutcome:
        """Run the procedure to a final state. Never raises for a run's own failure.

        ``signature``: the signature of the person who starts (or resumes) the run,
        carried by the Start command (or ``run_resumed``) record.

        Raises :class:`~cellauto.errors.FencedError` if another controller took the run
        over: nothing more can be recorded, so this one stops at once (its step is
        cancelled; no instrument command is sent without its durable intent).
        """
        try:
            return await self._execute(by, signature)
        except BaseException as exc:
            fenced = fenced_error(exc)
            if fenced is None:
                raise
            logger.error("run %s: %s", self.run_id, fenced)
            raise FencedError(str(fenced)) from None

    async def _execute(self, by: str, signature: SignatureShown | None) -> RunOutcome:
        if self._started:
            raise RuntimeError(f"run {self.run_id} was already executed")
        self._started = True
        ended: tuple[str, str] | None = None
        if self.resume_plan is None:
            # run_started with its lots and release plan in one commit: a controller
            # killed as the run starts leaves all of them or none (a run started with no
            # reservation on record would hold at every use of a material)
            reserved = materials_reserved(self)
            starting: list[rec.Payload] = [self._run_started]
            starting += [p for p in (reserved, self.release_plan) if p is not None]
            await self.record_durable_together(starting)
            self._record_claim()
            for checked in self.equipment_checked:  # the instruments prepare checked
                self.record(checked)
            self._transition(Command.START, by=by, approval=signature)
        else:
            ended = self._resume(self.resume_plan, by=by, signature=signature)
        async with anyio.create_task_group() as watchdogs:
            self._watchdogs = watchdogs
            exit_status, reason = ended or await self._run_procedure()
            # Settle the final state before anything else can run: a command that
            # arrives from here on meets Complete, Stopped or Aborted.
            self._procedure_scope = None
            self.current_step = None
            self._complete_acting_state("procedure ended")
            watchdogs.cancel_scope.cancel()
        await end_materials(self)
        final = await self.record_durable(
            rec.RunEnded(
                exit_status=exit_status,
                final_state=self.state.value,
                reason=reason,
                completed_steps=self.completed_steps,
            )
        )
        return RunOutcome(
            run_id=self.run_id,
            state=self.state,
            exit_status=exit_status,
            reason=reason,
            records=final + 1,
        )

    async def _run_procedure(self) -> tuple[str, str]:
        """The procedure in its cancel scope; returns (exit status, reason)."""
        cancelled = anyio.get_cancelled_exc_class()
        with anyio.CancelScope() as scope:
            self._procedure_scope = scope
            try:
                await run_procedure(self)
            except RunStopped:
                return "stopped", "stopped by command"
            except RunAborted as exc:
                self._abort_from_inside(exc.reason)
                return "aborted", exc.reason
            except cancelled:
                raise
            except BaseException as exc:  # a step failed (even by sys.exit): recorded, aborted
                reason = f"{type(exc).__name__}: {exc}"
                self._abort_from_inside(reason)
                return "failed", reason
        if scope.cancelled_caught:
            return "aborted", "aborted by command"
        return "complete", "procedure complete"

    def _abort_from_inside(self, reason: str) -> None:
        if self.state not in (State.ABORTING, State.ABORTED):
            self._transition(Command.ABORT, by=RUNNER, reason=reason)

    def _resume(
        self, plan: ResumePlan, *, by: str, signature: SignatureShown | None = None
    ) -> tuple[str, str] | None:
        """Take the run up where the journal left it; (exit status, reason) if it had ended."""
        self.state = plan.state
        self.values = dict(plan.values)
        self.checkpoints = dict(plan.checkpoints)
        self.completed_steps = len(plan.completed_steps)
        steps, now_s = self.protocol.steps, self.clock.now_s()
        instruments = {name: recorded.unwrapped for name, recorded in self.equipment.items()}
        resumed = plan.record(steps, by, now_s, instruments)
        if signature is not None:
            resumed = resumed.model_copy(update={"signature": signature})
        self.record(resumed, durable=True)
        self._record_claim()
        self.alarm(plan.alarm(steps, now_s), severity="critical" if plan.in_doubt else "warning")
        ending = plan.ending()
        if ending is not None:  # it was on its way to its end: record how
            if ending[0] == "failed":
                self._abort_from_inside(ending[1])
            self._complete_acting_state("resumed after the controller stopped")
            return ending
        if plan.state is State.IDLE:
            self._transition(Command.START, by=by, approval=signature)
        return None
