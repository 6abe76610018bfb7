"""The run records of operator tasks: a manual act asked of a person, and its answers.

A step that needs a person (connect a bag, read a label, weigh a bag) opens a *task*
(``task_opened``); the person's answer is ``task_answered`` carrying their signature
(meaning ``performed``); with verification a second person signs ``task_verified``
(meaning ``verified``) or rejects the entry (``task_rejected``: the entry is void and a
new attempt opens). An answer the runner refuses (self-verification, another run's
task, a person not eligible) is ``task_rejected`` too, and the task stays open. A task
nobody answered in time under an ``abort`` policy is ``task_expired``; Stop and Abort
withdraw open tasks (``task_withdrawn``).

Signatures are embedded as :class:`~cellauto.records.refs.SignatureShown` so that a
run's record is self-contained; a simulated operator's has ``simulated=True`` and no
site record.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, field_validator

from cellauto.records.kinds import RecordKind
from cellauto.records.payload_base import FROZEN, Payload, plain_json
from cellauto.records.refs import SignatureShown
from cellauto.records.site_payloads import TrainingSubject
from cellauto.records.spec import Spec

__all__ = [
    "TASK_PAYLOADS",
    "TaskAnswered",
    "TaskExpired",
    "TaskOpened",
    "TaskRejected",
    "TaskSummary",
    "TaskVerified",
    "TaskWithdrawn",
]


class TaskSummary(BaseModel):
    """What the person is asked: shown by the console, ``cellauto tasks`` and ``show``."""

    model_config = FROZEN

    what: Literal["confirm", "entry"]
    instruction: str
    value_type: str | None = None
    """``float``, ``int``, ``str`` or ``bool`` for an entry; None for a confirmation."""
    unit: str = ""
    spec: Spec | None = None
    pattern: str | None = None
    choices: list[str] | None = None
    verify: bool = False
    """A second person verifies the entry (a two-person check)."""
    permission: str = "step.perform"
    training: list[TrainingSubject] = []


class TaskOpened(Payload):
    """A task was put to the people of the line; nothing of it is done yet."""

    kind: ClassVar[RecordKind] = RecordKind.TASK_OPENED

    task_id: str
    """8 Crockford base32 characters, derived from run, step, name, key and attempt."""
    step: str | None
    name: str
    key: str | None = None
    attempt: int = 1
    """2 and more: the entry of an earlier attempt was rejected by its verifier."""
    summary: TaskSummary
    timeout_h: float | None = None
    due_process_time_s: float | None = None
    """When the timeout policy applies (process time, epoch s); None: no timeout."""
    on_timeout: Literal["hold", "abort"] = "hold"
    answered_by: Literal["people", "simulated"]


class TaskAnswered(Payload):
    """The person who performed the task signed it (and entered its value)."""

    kind: ClassVar[RecordKind] = RecordKind.TASK_ANSWERED

    task_id: str
    value: Any = None
    """What was entered, as entered (plain JSON); None for a confirmation."""
    signature: SignatureShown
    late: bool = False
    """Answered after the task's timeout (its hold policy had applied)."""

    _value = field_validator("value")(lambda cls, v: plain_json(v))


class TaskVerified(Payload):
    """A second person verified the entry of ``task_answered`` (two-person check)."""

    kind: ClassVar[RecordKind] = RecordKind.TASK_VERIFIED

    task_id: str
    signature: SignatureShown
    late: bool = False


class TaskRejected(Payload):
    """An entry rejected by its verifier (``cause="rejected"``: the entry is void and a new
    attempt opens), or an answer the runner refused (the task stays open)."""

    kind: ClassVar[RecordKind] = RecordKind.TASK_REJECTED

    task_id: str
    by: SignatureShown | None
    cause: str
    """``rejected``, ``self_verification``, ``wrong_run``, ``wrong_phase``,
    ``not_eligible``, ``simulated_in_real_run``."""
    detail: str = ""


class TaskExpired(Payload):
    """Nobody answered in time and the task's policy was ``abort``: it can no longer be
    answered, and the run aborts."""

    kind: ClassVar[RecordKind] = RecordKind.TASK_EXPIRED

    task_id: str
    policy: str


class TaskWithdrawn(Payload):
    """An open task taken back (the run was stopped or aborted): it can no longer be
    answered."""

    kind: ClassVar[RecordKind] = RecordKind.TASK_WITHDRAWN

    task_id: str
    why: str


TASK_PAYLOADS: tuple[type[Payload], ...] = (
    TaskOpened,
    TaskAnswered,
    TaskVerified,
    TaskRejected,
    TaskExpired,
    TaskWithdrawn,
)
"""The payload models of the task record kinds (registered in ``PAYLOAD_TYPES``)."""
