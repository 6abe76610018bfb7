"""The procedure of a run: its steps in order, each with its records and watchdogs.

After a controller crash the step that was interrupted runs again by its resume
policy, and a maximum hold that was running between steps is watched again. These
functions drive an :class:`~cellauto.protocols.execution.Execution` (package-internal:
they use its private state machine and watchdog task group).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from cellauto.protocols.context import RunAborted
from cellauto.protocols.definition import ResumePolicy, StepDefinition
from cellauto.protocols.equipment_check import equipment_gate
from cellauto.protocols.outcome import RunStopped, primary_exception
from cellauto.protocols.resume import ResumePlan
from cellauto.protocols.run_records import RUNNER
from cellauto.protocols.states import Command, State
from cellauto.protocols.watchdogs import watch_duration, watch_hold
from cellauto.records import payloads as rec

if TYPE_CHECKING:
    from cellauto.protocols.execution import Execution

__all__ = ["run_procedure"]


async def run_procedure(execution: Execution) -> None:
    """Every step not yet done, in order, each after a hold point; then a last hold point."""
    plan = execution.resume_plan
    first = 0 if plan is None else plan.next_step
    if plan is not None:
        _rearm_hold_watch(execution, plan)
    held_at_resume = plan is not None and plan.state in (State.HOLDING, State.HELD)
    for index, step in enumerate(execution.protocol.steps):
        if index < first or (plan is not None and index in plan.completed_steps):
            continue
        await execution.hold_point()
        await equipment_gate(execution, step)  # its instruments fit, else Hold
        if plan is not None and index == plan.interrupted_step:
            await _rerun_interrupted(execution, index, step, plan, restarted=held_at_resume)
        else:
            await _run_step(execution, index, step)
    await execution.hold_point()


def _rearm_hold_watch(execution: Execution, plan: ResumePlan) -> None:
    """Between steps at the crash: the last completed step's maximum hold still runs."""
    if plan.interrupted_step is not None or not plan.completed_steps:
        return
    step = execution.protocol.steps[plan.completed_steps[-1]]
    if step.max_hold_h and plan.last_completed_s is not None and execution._watchdogs is not None:
        execution.current_step = step
        elapsed_s = execution.clock.now_s() - plan.last_completed_s
        watch_hold(execution, execution._watchdogs, step, elapsed_s=elapsed_s)


async def _rerun_interrupted(
    execution: Execution, index: int, step: StepDefinition, plan: ResumePlan, *, restarted: bool
) -> None:
    """The step in progress at the crash, by its resume policy.

    ``restarted``: the run was Held at the crash and an operator has restarted it,
    which is the decision an ``operator`` step asks for.
    """
    if (
        step.resume is ResumePolicy.OPERATOR
        and not restarted
        and execution.state in (State.RUNNING, State.RESTARTING)
    ):
        execution._transition(Command.HOLD, by=RUNNER, reason=plan.operator_hold_reason(step))
        await execution.hold_point()
    execution.resumed = plan.resumed_step(execution.clock.now_s())
    try:
        await _run_step(
            execution,
            index,
            step,
            attempt=plan.attempts + 1,
            first_started_s=plan.interrupted_step_started_s,
        )
    finally:
        execution.resumed = None


async def _run_step(
    execution: Execution,
    index: int,
    step: StepDefinition,
    *,
    attempt: int = 1,
    first_started_s: float | None = None,
) -> None:
    execution.current_step = step
    execution.step_started_s = (
        first_started_s if first_started_s is not None else execution.clock.now_s()
    )
    execution.record(
        rec.StepStarted(
            step=step.name,
            index=index,
            path=step.path,
            resume=step.resume.value,
            attempt=attempt,
        )
    )
    started = execution.clock.monotonic()
    assert execution._watchdogs is not None
    watchdog = (
        watch_duration(execution, execution._watchdogs, step) if step.max_duration_h else None
    )
    kwargs = {name: execution.equipment[name] for name in step.equipment}
    try:
        await step.function(execution.context, **kwargs)
    except BaseException as exc:
        primary = primary_exception(exc)
        _record_step_failure(execution, index, step, primary, execution.clock.monotonic() - started)
        if primary is exc or isinstance(primary, anyio.get_cancelled_exc_class()):
            raise
        raise primary from exc  # a step's own task group wrapped it: unwrap
    finally:
        if watchdog is not None:
            watchdog.cancel()
    execution.completed_steps += 1
    execution.record(
        rec.StepCompleted(
            step=step.name, index=index, duration_s=execution.clock.monotonic() - started
        )
    )
    if step.max_hold_h:
        watch_hold(execution, execution._watchdogs, step)


def _record_step_failure(
    execution: Execution, index: int, step: StepDefinition, exc: BaseException, duration_s: float
) -> None:
    cancelled = anyio.get_cancelled_exc_class()
    if isinstance(exc, cancelled) and execution.state not in (State.ABORTING, State.ABORTED):
        # not an Abort: the controller itself is stopping (SIGTERM) and leaves the step in
        # progress, as a crash does, for a peer's resume and the step's resume policy; a
        # step failure recorded here would read as "aborted by command" to that resume
        return
    if isinstance(exc, RunStopped):
        error_type, message = "stopped", "stopped by command"
    elif isinstance(exc, cancelled):
        error_type, message = "cancelled", "cancelled by Abort"
    else:
        error_type, message = type(exc).__name__, str(exc) or type(exc).__name__
    execution.record(
        rec.StepFailed(
            step=step.name,
            index=index,
            error_type=error_type,
            error=message,
            duration_s=duration_s,
        ),
        durable=True,
    )
    if not isinstance(exc, RunStopped | RunAborted | cancelled):
        execution.alarm(
            f"step {step.name!r} failed: {error_type}: {message}",
            severity="critical",
            source=step.name,
        )
