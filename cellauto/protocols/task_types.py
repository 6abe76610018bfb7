"""What passes between a :class:`~cellauto.protocols.tasks.TaskBoard` and the people who
answer its tasks: the task as offered, an answer, a task's result, and the protocols an
answerer, a watcher of the ``tasks`` table and the site's authority implement."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from cellauto.records import payloads as rec
from cellauto.records.refs import RecordRef, SignatureShown, SiteRef

if TYPE_CHECKING:
    from cellauto.protocols.tasks import TaskBoard

__all__ = [
    "Answerer",
    "Authority",
    "OfferedTask",
    "Phase",
    "TaskAnswer",
    "TaskEvent",
    "TaskResult",
    "TaskWatcher",
]


Phase = Literal["perform", "verify"]


class TaskAnswer(BaseModel):
    """An answer to a task, from whatever source: what a person entered and signed."""

    model_config = ConfigDict(frozen=True)

    task_id: str
    run_id: str
    phase: Phase
    value: Any = None
    reject: bool = False
    """Verify phase: the verifier rejects the entry (with ``reason``)."""
    reason: str = ""
    signature: SignatureShown
    site: SiteRef | None = None
    simulated: bool = False


class TaskResult(BaseModel):
    """How a task ended: the value taken (None for a confirmation) and who signed."""

    model_config = ConfigDict(frozen=True)

    task_id: str
    value: Any = None
    performed_by: SignatureShown
    verified_by: SignatureShown | None = None
    late: bool = False
    consequences_recorded: frozenset[str] = frozenset()
    """After a controller crash: what the step recorded of the answer before it
    (``value``, ``check``, ``identity``); the step records the rest."""


@dataclass
class OfferedTask:
    """A task as an answerer is offered it."""

    opened: rec.TaskOpened
    run_id: str
    phase: Phase = "perform"
    performer: str | None = None
    """Verify phase: who performed the task (may not verify it)."""
    value: Any = None
    """Verify phase: the value entered."""
    expect: Any = None
    """What the step expects (a label); for simulated operators only, never shown."""
    sim: Any = None
    """The step's ``sim=``: what a simulated operator enters (a value or f(world))."""
    value_type: type | None = None
    target: RecordRef | None = None
    """The run record a signature of this phase signs: ``task_opened`` to perform,
    ``task_answered`` to verify (None: a task taken up again after a crash)."""


class Answerer(Protocol):
    """Someone in this process who may answer tasks (the console, simulated operators)."""

    def offer(self, task: OfferedTask, board: TaskBoard) -> None:
        """A task (or its verify phase) is open; answer it later with ``board.deliver``."""


TaskEvent = Literal["refused", "closed", "expired", "withdrawn"]
"""What became of a task's phase: an answer refused (the phase stays open), the task
answered to its end or its attempt voided (``closed``), nobody answered in time
(``expired``), taken back (``withdrawn``)."""


class TaskWatcher(Protocol):
    """An answerer that keeps an index of open tasks (the ``tasks`` table) is told when a
    phase ends or an answer is refused (offered again: :meth:`Answerer.offer`)."""

    def task_event(self, task: OfferedTask, event: TaskEvent, board: TaskBoard) -> None:
        """``task``'s phase came to ``event``."""


class Authority(Protocol):
    """Who may answer: the site's training and permission checks (None in simulation)."""

    def refusal(
        self, answer: TaskAnswer, task: rec.TaskOpened, performer: str | None
    ) -> str | None:
        """Why ``answer`` may not be taken (the signer lacks a permission or training)."""

    def approval_refusal(
        self, approval: SignatureShown, permission: str, *, signs: RecordRef | None = None
    ) -> str | None:
        """Why ``approval`` (e.g. of a Restart after a deviation) does not grant
        ``permission`` (the signer lacks it, the signature does not confirm, or it does
        not sign ``signs``: the record the approval is for)."""
