"""Answers for a Held run when nobody is at the console (unattended lines, tests, benches)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import anyio

from cellauto.errors import StateCommandError
from cellauto.protocols.execution import Execution
from cellauto.protocols.states import Command, State
from cellauto.records.payloads import Payload, RunResumed, StateChange

__all__ = ["HOLD_POLICIES", "HoldAnswer", "HoldResponder"]

logger = logging.getLogger(__name__)

HOLD_POLICIES = ("restart", "stop", "abort")
"""The commands an unattended on-hold policy may answer a Held run with."""

MAX_RESTARTS_WITHOUT_TIME = 3
"""Restarts an unattended policy gives a run held again and again at the same step at the
same process time (an instrument out of calibration, a lot rejected: nothing a restart
alone can clear) before it stops the run instead of spinning."""


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
    """

    def __init__(self, command: Command | str | None, *, by: str, reason: str) -> None:
        self.command = Command(command) if command else None
        self.by = by
        self.reason = reason
        self.execution: Execution | None = None
        self.task_group: anyio.abc.TaskGroup | None = None
        self.held = 0
        self.answers: list[HoldAnswer] = []
        self._stuck: tuple[str | None, float] | None = None  # (step, process time) held at
        self._stuck_count = 0

    def bind(self, execution: Execution, task_group: anyio.abc.TaskGroup) -> None:
        self.execution = execution
        self.task_group = task_group

    def __call__(self, payload: Payload, now_s: float) -> None:
        held = State.HELD.value
        if (isinstance(payload, StateChange) and payload.to_state == held) or (
            isinstance(payload, RunResumed) and payload.state == held  # held at the crash
        ):
            if self.task_group is None:
                raise RuntimeError("HoldResponder.bind() was not called before the run started")
            self.held += 1
            step = self.execution.current_step_name if self.execution else None
            same = self._stuck is not None and self._stuck == (step, now_s)
            self._stuck, self._stuck_count = (step, now_s), (self._stuck_count + 1 if same else 1)
            self.task_group.start_soon(self._answer)

    async def decide(self, execution: Execution) -> tuple[Command, str, str] | None:
        """The command to send, who sends it and why; None leaves the run Held."""
        if self.command is None:
            return None
        return self.command, self.by, self.reason

    async def _answer(self) -> None:
        execution = self.execution
        assert execution is not None
        answer: tuple[Command, str, str] | None = None
        step = execution.current_step_name
        try:
            answer = await self.decide(execution)
            if (
                answer is not None
                and answer[0] is Command.RESTART
                and self._stuck_count > MAX_RESTARTS_WITHOUT_TIME
            ):
                answer = (
                    Command.STOP,
                    answer[1],
                    f"held {self._stuck_count} times at step {step!r} with no process time"
                    " passing between: a restart alone cannot clear what holds it",
                )
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
