"""Watchdogs of a run: a step's maximum duration and the maximum hold before the next step."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from cellauto.protocols.definition import StepDefinition
from cellauto.protocols.spec import CheckPolicy
from cellauto.protocols.states import FINAL_STATES, Command

if TYPE_CHECKING:
    from cellauto.protocols.execution import Execution

__all__ = ["watch_duration", "watch_hold"]


def watch_duration(
    execution: Execution, task_group: anyio.abc.TaskGroup, step: StepDefinition
) -> anyio.CancelScope:
    """Raise a deviation if ``step`` runs past ``max_duration_h``; cancel the scope at its end.

    The limit counts from the step's first start (before a controller crash, if any).
    """
    scope = anyio.CancelScope()
    limit_h = step.max_duration_h
    assert limit_h is not None
    started_s = execution.step_started_s
    elapsed_s = 0.0 if started_s is None else execution.clock.now_s() - started_s

    async def watch() -> None:
        with scope:
            await anyio.sleep(max(0.0, limit_h * 3600 - elapsed_s))
            reason = f"step {step.name!r} exceeded its maximum duration of {limit_h:g} h"
            execution.alarm(reason, severity="major", source=step.name)
            execution.deviation(step.name, "max duration", reason, step.on_timeout)
            if step.on_timeout is CheckPolicy.ABORT and execution.state not in FINAL_STATES:
                execution.command(Command.ABORT, by="runner", reason=reason)

    task_group.start_soon(watch)
    return scope


def watch_hold(
    execution: Execution,
    task_group: anyio.abc.TaskGroup,
    step: StepDefinition,
    *,
    elapsed_s: float = 0.0,
) -> None:
    """Raise a deviation if the step after ``step`` has not started within ``max_hold_h``
    (``elapsed_s`` of it already gone, e.g. before a controller crash)."""
    limit_h = step.max_hold_h
    assert limit_h is not None
    next_index = execution.completed_steps

    async def watch() -> None:
        await anyio.sleep(max(0.0, limit_h * 3600 - elapsed_s))
        if execution.completed_steps == next_index and execution.current_step is step:
            reason = (
                f"the next step did not start within {limit_h:g} h of {step.name!r} "
                "(maximum hold time)"
            )
            execution.alarm(reason, severity="major", source=step.name)
            # the run is already waiting (held or between steps): record, do not re-hold
            execution.deviation(step.name, "max hold", reason, CheckPolicy.CONTINUE)

    task_group.start_soon(watch)
