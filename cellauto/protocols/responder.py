"""Answers for a Held run when nobody is at the console (unattended lines, tests, benches)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import anyio

from cellauto.errors import StateCommandError
from cellauto.protocols.execution import Execution
from cellauto.protocols.states import Command, State
from cellauto.records.payloads import Deviation, Payload, RunResumed, StateChange, StepCompleted
from cellauto.records.spec import CheckPolicy

__all__ = ["HOLD_POLICIES", "MAX_AUTOMATIC_RESTARTS", "HoldAnswer", "HoldResponder"]

logger = logging.getLogger(__name__)

HOLD_POLICIES = ("restart", "stop", "abort")
"""The commands an unattended on-hold policy may answer a Held run with."""

MAX_AUTOMATIC_RESTARTS = 3
"""Restarts an unattended policy gives one hold: the same step held again for the same
cause (a lot that is not there, an instrument out of service: nothing a restart alone can
clear), with no step completed since. The next time, it stops the run instead (journaled
as the Stop's reason, with a critical alarm), so that an unattended line or a test
harness ends rather than journaling Hold -> Restart -> Hold without end."""

RESUMED_HELD = "held when its controller stopped"
"""The cause of a hold found at a resume (the run was Held when its controller died)."""


@dataclass(frozen=True)
class HoldAnswer:
    """One answer given to a Held run (journaled as a Command record with ``by`` and ``reason``)."""

    run_id: str
    step: str | None
    command: str
    by: str
    reason: str
    applied: bool
    """False: the answer was refused or failed, and the run stayed Held."""


class HoldResponder:
    """Observer that answers each Held state with ``command`` (None: leave it Held).

    Bind it to the run and to a task group with :meth:`bind` before the run starts.
    Subclasses may override :meth:`decide` (e.g. to ask an operator). Nothing it does
    can disturb the run: a refused or failed answer is logged and the run stays Held.
    ``held`` counts the Held states it saw, ``answers`` what it answered, by whom.

    The unattended policy (``command``) restarts one hold (same step, same cause) at
    most :data:`MAX_AUTOMATIC_RESTARTS` times while no step completes; held once more
    for it, the run is stopped with a reason saying so and a critical alarm. A person
    answering through :meth:`decide` is not second-guessed.
    """

    def __init__(self, command: Command | str | None, *, by: str, reason: str) -> None:
        self.command = Command(command) if command else None
        self.by = by
        self.reason = reason
        self.execution: Execution | None = None
        self.task_group: anyio.abc.TaskGroup | None = None
        self.held = 0
        self.answers: list[HoldAnswer] = []
        self._cause: str | None = None  # what the coming Held is for (deviation or Hold)
        self._times_held: dict[tuple[str | None, str], int] = {}  # since a step completed

    def bind(self, execution: Execution, task_group: anyio.abc.TaskGroup) -> None:
        self.execution = execution
        self.task_group = task_group

    def __call__(self, payload: Payload, now_s: float) -> None:
        held = State.HELD.value
        if isinstance(payload, Deviation) and payload.policy is CheckPolicy.HOLD:
            self._cause = self._cause or f"{payload.check}: {payload.description}"
        elif isinstance(payload, StateChange) and payload.to_state == State.HOLDING.value:
            self._cause = self._cause or payload.cause
        elif isinstance(payload, StateChange) and payload.to_state == State.RUNNING.value:
            self._cause = None  # a hold-policy deviation that held nothing is forgotten
        elif isinstance(payload, StepCompleted):
            self._times_held.clear()  # the procedure moved on: a later hold is another
        if (isinstance(payload, StateChange) and payload.to_state == held) or (
            isinstance(payload, RunResumed) and payload.state == held  # held at the crash
        ):
            if self.task_group is None:
                raise RuntimeError("HoldResponder.bind() was not called before the run started")
            self.held += 1
            step = self.execution.current_step_name if self.execution else None
            cause, self._cause = self._cause or RESUMED_HELD, None
            times = self._times_held[(step, cause)] = self._times_held.get((step, cause), 0) + 1
            self.task_group.start_soon(self._answer, cause, times)

    async def decide(self, execution: Execution) -> tuple[Command, str, str] | None:
        """The command to send, who sends it and why; None leaves the run Held."""
        if self.command is None:
            return None
        return self.command, self.by, self.reason

    async def _answer(self, cause: str, times: int) -> None:
        execution = self.execution
        assert execution is not None
        answer: tuple[Command, str, str] | None = None
        step = execution.current_step_name
        try:
            answer = await self.decide(execution)
            if (
                answer is not None
                and answer[0] is Command.RESTART
                and self.command is Command.RESTART  # the unattended policy's answer
                and times > MAX_AUTOMATIC_RESTARTS
            ):
                answer = (Command.STOP, answer[1], _given_up(step, cause, times))
                logger.error("run %s: %s", execution.run_id, answer[2])
                if execution.state is State.HELD:
                    execution.alarm(answer[2], severity="critical", source=step or "run")
            if answer is not None and execution.state is State.HELD:
                command, by, reason = answer
                execution.command(command, by=by, reason=reason)
                self._note(execution, step, answer, applied=True)
        except StateCommandError as exc:  # the state moved on meanwhile
            logger.info("hold answer not applied: %s", exc)
            if answer is not None:
                self._note(execution, step, answer, applied=False)
        except Exception:
            logger.exception("answering the Held run failed; the run stays Held")
            if answer is not None:
                self._note(execution, step, answer, applied=False)

    def _note(
        self,
        execution: Execution,
        step: str | None,
        answer: tuple[Command, str, str],
        *,
        applied: bool,
    ) -> None:
        command, by, reason = answer
        self.answers.append(
            HoldAnswer(execution.run_id, step, command.value, by, reason, applied=applied)
        )


def _given_up(step: str | None, cause: str, times: int) -> str:
    where = f"step {step!r}" if step else "between steps"
    return (
        f"held {times} times at {where} for the same cause after {MAX_AUTOMATIC_RESTARTS} "
        f"automatic restarts ({cause}): a restart alone cannot clear it; stopped by the "
        "unattended on-hold policy instead of restarting without end: find and clear the "
        "cause, then start a new run"
    )
