"""How a run ends: its outcome, the Stop signal, and which of a step's errors counts."""

from __future__ import annotations

import anyio
from pydantic import BaseModel

from cellauto.errors import FencedError
from cellauto.protocols.context import RunAborted
from cellauto.protocols.states import State

__all__ = ["RunOutcome", "RunStopped", "fenced_error", "primary_exception"]


class RunOutcome(BaseModel):
    """How a run ended."""

    run_id: str
    state: State
    exit_status: str  # complete | stopped | aborted | failed
    reason: str
    records: int


class RunStopped(BaseException):
    """Raised at a hold point after a Stop command; protocol code cannot swallow it."""


def primary_exception(exc: BaseException) -> BaseException:
    """The exception that matters in what a step raised.

    A step that runs its own task group raises an exception group; the run acts on
    an abort or stop signal first, then on the first real error, and only then on a
    cancellation.
    """
    if not isinstance(exc, BaseExceptionGroup):
        return exc
    leaves: list[BaseException] = []

    def collect(group: BaseExceptionGroup) -> None:
        for inner in group.exceptions:
            if isinstance(inner, BaseExceptionGroup):
                collect(inner)
            else:
                leaves.append(inner)

    collect(exc)
    cancelled = anyio.get_cancelled_exc_class()
    for wanted in (RunAborted, RunStopped):
        for leaf in leaves:
            if isinstance(leaf, wanted):
                return leaf
    return next((leaf for leaf in leaves if not isinstance(leaf, cancelled)), leaves[0])


def fenced_error(exc: BaseException) -> FencedError | None:
    """The FencedError in ``exc`` (itself, its cause or context, or an exception group's)."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, FencedError):
            return current
        if isinstance(current, BaseExceptionGroup):
            todo.extend(current.exceptions)
        todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return None
