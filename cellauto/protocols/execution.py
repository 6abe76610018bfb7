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
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import anyio
from pydantic import BaseModel

from cellauto.clock import Clock
from cellauto.errors import StateCommandError
from cellauto.protocols.context import Run, RunAborted
from cellauto.protocols.definition import Protocol, StepDefinition
from cellauto.protocols.params import Params
from cellauto.protocols.recording import RecordedInstrument
from cellauto.protocols.spec import CheckPolicy
from cellauto.protocols.states import (
    AUTOMATIC,
    FINAL_STATES,
    Command,
    State,
    allowed_commands,
    next_state,
)
from cellauto.records import RecordKind, RunJournal

__all__ = ["Execution", "RunOutcome"]

logger = logging.getLogger(__name__)

Observer = Callable[[RecordKind, dict[str, Any], float], None]
RUNNER = "runner"


class RunStopped(BaseException):
    """Raised at a hold point after a Stop command; protocol code cannot swallow it."""


class RunOutcome(BaseModel):
    """How a run ended."""

    run_id: str
    state: State
    exit_status: str  # complete | stopped | aborted | failed
    reason: str
    records: int


class Execution:
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
        run_started: dict[str, Any],
        observers: list[Observer],
    ) -> None:
        self.run_id = run_id
        self.protocol = protocol
        self.params = params
        self.clock = clock
        self._journal = journal
        self._run_started = run_started
        self._observers = observers
        self.state = State.IDLE
        self._state_changed = anyio.Event()
        self.current_step: StepDefinition | None = None
        self.current_step_name: str | None = None
        self.completed_steps = 0
        self._procedure_scope: anyio.CancelScope | None = None
        self._watchdogs: anyio.abc.TaskGroup | None = None
        self._started = False
        self.equipment = {
            name: RecordedInstrument(name, instrument, self)
            for name, instrument in instruments.items()
        }
        self.context = Run(self)

    # -- records ---------------------------------------------------------------------
    def record(self, kind: RecordKind, payload: dict[str, Any], *, durable: bool = False) -> int:
        """Journal one record of this run; returns its sequence number."""
        seq, _ = self._journal.append(kind, payload, durable=durable)
        if self._observers:
            now = self.clock.now_s()
            for observer in list(self._observers):
                try:
                    observer(kind, payload, now)
                except Exception:  # a display must never disturb the batch
                    logger.exception("run %s: observer %r failed; detached", self.run_id, observer)
                    self._observers.remove(observer)
        return seq

    def deviation(
        self, step: str | None, check: str, description: str, policy: CheckPolicy, **extra: Any
    ) -> None:
        """Record a Deviation and apply its policy (hold here; abort is the caller's)."""
        self.record(
            RecordKind.DEVIATION,
            {
                "step": step,
                "check": check,
                "description": description,
                "policy": policy.value,
                **extra,
            },
            durable=True,
        )
        logger.warning("run %s deviation: %s", self.run_id, description)
        if policy is CheckPolicy.HOLD and self.state in (State.RUNNING, State.RESTARTING):
            self._transition(Command.HOLD, by=RUNNER, reason=f"deviation: {description}")

    def alarm(self, message: str, *, severity: str = "warning", source: str = "run") -> None:
        self.record(RecordKind.ALARM, {"source": source, "severity": severity, "message": message})
        logger.warning("run %s alarm (%s): %s", self.run_id, severity, message)

    # -- state machine -----------------------------------------------------------------
    def _set_state(self, new: State, cause: str) -> None:
        old, self.state = self.state, new
        self.record(
            RecordKind.STATE_CHANGE,
            {
                "from_state": old.value,
                "to_state": new.value,
                "cause": cause,
                "step": self.current_step_name,
            },
            durable=True,
        )
        event, self._state_changed = self._state_changed, anyio.Event()
        event.set()

    def _transition(self, command: Command, *, by: str, reason: str = "") -> State:
        try:
            new = next_state(self.state, command)
        except StateCommandError as exc:
            self.record(
                RecordKind.COMMAND,
                {
                    "command": command.value,
                    "state": self.state.value,
                    "accepted": False,
                    "by": by,
                    "reason": reason,
                    "refusal": str(exc),
                },
            )
            raise
        self.record(
            RecordKind.COMMAND,
            {
                "command": command.value,
                "state": self.state.value,
                "accepted": True,
                "by": by,
                "reason": reason,
            },
        )
        self._set_state(new, f"{command.value} by {by}" + (f": {reason}" if reason else ""))
        return new

    def command(self, command: Command | str, *, by: str, reason: str = "") -> State:
        """Apply an ISA-88 command; refused commands raise StateCommandError (and are journaled)."""
        command = Command(command)
        if command is Command.START:
            # A run starts once, through execute(); a reset run is over and a new
            # batch is a new run (prepare it), so Start is refused here and journaled.
            exc = StateCommandError(
                command.value,
                self.state.value,
                [c.value for c in allowed_commands(self.state) if c is not Command.START],
            )
            if self._started:
                self.record(
                    RecordKind.COMMAND,
                    {
                        "command": command.value,
                        "state": self.state.value,
                        "accepted": False,
                        "by": by,
                        "reason": reason,
                        "refusal": f"{exc}; start a new run with Runner.prepare().execute()",
                    },
                )
            raise exc
        new = self._transition(command, by=by, reason=reason)
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
    async def execute(self, *, by: str = RUNNER) -> RunOutcome:
        """Run the procedure to a final state. Never raises for a run's own failure."""
        if self._started:
            raise RuntimeError(f"run {self.run_id} was already executed")
        self._started = True
        self.record(RecordKind.RUN_STARTED, self._run_started, durable=True)
        self._transition(Command.START, by=by)
        exit_status, reason = "complete", "procedure complete"
        async with anyio.create_task_group() as watchdogs:
            self._watchdogs = watchdogs
            with anyio.CancelScope() as scope:
                self._procedure_scope = scope
                try:
                    await self._procedure()
                except RunStopped:
                    exit_status, reason = "stopped", "stopped by command"
                except RunAborted as exc:
                    exit_status, reason = "aborted", exc.reason
                    if self.state not in (State.ABORTING, State.ABORTED):
                        self._transition(Command.ABORT, by=RUNNER, reason=exc.reason)
                except Exception as exc:  # a step failed: recorded, then the run aborts
                    exit_status, reason = "failed", f"{type(exc).__name__}: {exc}"
                    if self.state not in (State.ABORTING, State.ABORTED):
                        self._transition(Command.ABORT, by=RUNNER, reason=reason)
            if scope.cancelled_caught and exit_status == "complete":
                exit_status, reason = "aborted", "aborted by command"
            watchdogs.cancel_scope.cancel()
        self._procedure_scope = None
        self.current_step = None
        self.current_step_name = None
        self._complete_acting_state("procedure ended")
        final = self.record(
            RecordKind.RUN_ENDED,
            {
                "exit_status": exit_status,
                "final_state": self.state.value,
                "reason": reason,
                "completed_steps": self.completed_steps,
            },
            durable=True,
        )
        return RunOutcome(
            run_id=self.run_id,
            state=self.state,
            exit_status=exit_status,
            reason=reason,
            records=final + 1,
        )

    async def _procedure(self) -> None:
        previous: StepDefinition | None = None
        for index, step in enumerate(self.protocol.steps):
            await self.hold_point()
            await self._run_step(index, step, previous)
            previous = step
        await self.hold_point()

    async def _run_step(
        self, index: int, step: StepDefinition, previous: StepDefinition | None
    ) -> None:
        self.current_step = step
        self.current_step_name = step.name
        self.record(
            RecordKind.STEP_STARTED,
            {"step": step.name, "index": index, "path": step.path, "resume": step.resume.value},
        )
        started = self.clock.monotonic()
        watchdog = self._start_duration_watchdog(step) if step.max_duration_h else None
        kwargs = {name: self.equipment[name] for name in step.equipment}
        try:
            await step.function(self.context, **kwargs)
        except BaseException as exc:
            outcome = "stopped" if isinstance(exc, RunStopped) else type(exc).__name__
            message = str(exc) or outcome
            if isinstance(exc, anyio.get_cancelled_exc_class()):
                message = "cancelled by Abort"
            self.record(
                RecordKind.STEP_FAILED,
                {
                    "step": step.name,
                    "index": index,
                    "error_type": outcome,
                    "error": message,
                    "duration_s": self.clock.monotonic() - started,
                },
                durable=True,
            )
            if isinstance(exc, Exception):
                self.alarm(
                    f"step {step.name!r} failed: {type(exc).__name__}: {exc}",
                    severity="critical",
                    source=step.name,
                )
            raise
        finally:
            if watchdog is not None:
                watchdog.cancel()
        self.completed_steps += 1
        self.record(
            RecordKind.STEP_COMPLETED,
            {"step": step.name, "index": index, "duration_s": self.clock.monotonic() - started},
        )
        if step.max_hold_h:
            self._start_hold_watchdog(step)

    # -- watchdogs ---------------------------------------------------------------------
    def _start_duration_watchdog(self, step: StepDefinition) -> anyio.CancelScope:
        scope = anyio.CancelScope()
        assert self._watchdogs is not None and step.max_duration_h is not None

        async def watch() -> None:
            with scope:
                await anyio.sleep(step.max_duration_h * 3600)
                reason = (
                    f"step {step.name!r} exceeded its maximum duration of {step.max_duration_h:g} h"
                )
                self.alarm(reason, severity="major", source=step.name)
                self.deviation(step.name, "max duration", reason, step.on_timeout)
                if step.on_timeout is CheckPolicy.ABORT and self.state not in FINAL_STATES:
                    self.command(Command.ABORT, by=RUNNER, reason=reason)

        self._watchdogs.start_soon(watch)
        return scope

    def _start_hold_watchdog(self, step: StepDefinition) -> None:
        assert self._watchdogs is not None and step.max_hold_h is not None
        next_index = self.completed_steps

        async def watch() -> None:
            await anyio.sleep(step.max_hold_h * 3600)
            if self.completed_steps == next_index and self.current_step is step:
                reason = (
                    f"the next step did not start within {step.max_hold_h:g} h of "
                    f"{step.name!r} (maximum hold time)"
                )
                self.alarm(reason, severity="major", source=step.name)
                self.record(
                    RecordKind.DEVIATION,
                    {
                        "step": step.name,
                        "check": "max hold",
                        "description": reason,
                        "policy": CheckPolicy.HOLD.value,
                    },
                    durable=True,
                )

        self._watchdogs.start_soon(watch)
