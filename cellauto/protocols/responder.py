"""Answers for a Held run when nobody is at the console (unattended lines, tests)."""

from __future__ import annotations

import logging

import anyio

from cellauto.errors import StateCommandError
from cellauto.protocols.execution import Execution
from cellauto.protocols.states import Command, State
from cellauto.records.payloads import Payload, RunResumed, StateChange

__all__ = ["HoldResponder"]

logger = logging.getLogger(__name__)


class HoldResponder:
    """Observer that answers each Held state with ``command`` (None: leave it Held).

    Bind it to the run and to a task group with :meth:`bind` before the run starts.
    Subclasses may override :meth:`decide` (e.g. to ask an operator). Nothing it does
    can disturb the run: a refused or failed answer is logged and the run stays Held.
    """

    def __init__(self, command: Command | str | None, *, by: str, reason: str) -> None:
        self.command = Command(command) if command else None
        self.by = by
        self.reason = reason
        self.execution: Execution | None = None
        self.task_group: anyio.abc.TaskGroup | None = None

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
            self.task_group.start_soon(self._answer)

    async def decide(self, execution: Execution) -> tuple[Command, str, str] | None:
        """The command to send, who sends it and why; None leaves the run Held."""
        if self.command is None:
            return None
        return self.command, self.by, self.reason

    async def _answer(self) -> None:
        execution = self.execution
        assert execution is not None
        try:
            answer = await self.decide(execution)
            if answer is not None and execution.state is State.HELD:
                command, by, reason = answer
                execution.command(command, by=by, reason=reason)
        except StateCommandError as exc:  # the state moved on meanwhile
            logger.info("hold answer not applied: %s", exc)
        except Exception:
            logger.exception("answering the Held run failed; the run stays Held")
