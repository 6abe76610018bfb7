"""One pydantic model per record kind: the payload a record carries.

Every writer builds one of these models, so a record is validated before it is
written; every reader (resume, show, export, the pytest plugin, observers) gets the
same model back from :attr:`cellauto.records.models.Record.payload`, so nothing reads
a record by string key. A payload's fields are its keys in the hashed body (see
:mod:`cellauto.records.canonical`); changing a field is a new journal schema version.

Some records carry a verdict that can be recomputed from what else they hold (a
check's ``passed`` from its value and spec). Readers show the recomputed verdict and
flag a stored one that disagrees: see :meth:`Payload.verdict_problem`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cellauto.records.check_payloads import CheckResult, IdentityCheck
from cellauto.records.instrument_payloads import (
    ErrorInfo,
    InstrumentCommand,
    InstrumentReleased,
    InstrumentResponse,
    InstrumentWaited,
    Reading,
    WaitedFor,
)
from cellauto.records.kinds import RecordKind
from cellauto.records.material_payloads import MATERIAL_PAYLOADS
from cellauto.records.payload_base import Payload, plain_json
from cellauto.records.refs import SignatureShown, SiteRef
from cellauto.records.release_plan import ReleasePlan
from cellauto.records.simulation_info import SimulationInfo
from cellauto.records.spec import CheckPolicy, Spec
from cellauto.records.task_payloads import (
    TASK_PAYLOADS,
    TaskAnswered,
    TaskExpired,
    TaskOpened,
    TaskRejected,
    TaskSummary,
    TaskVerified,
    TaskWithdrawn,
)

__all__ = [
    "PAYLOAD_TYPES",
    "Alarm",
    "BatchValue",
    "CheckResult",
    "Checkpoint",
    "Command",
    "ControllerClaimed",
    "ControllerReleased",
    "Deviation",
    "EquipmentIdentity",
    "ErrorInfo",
    "IdentityCheck",
    "InDoubtCommand",
    "InstrumentCommand",
    "InstrumentReleased",
    "InstrumentResponse",
    "InstrumentWaited",
    "OperatorAction",
    "Payload",
    "PreviousController",
    "Reading",
    "RunEnded",
    "RunResumed",
    "RunStarted",
    "SimulationInfo",
    "StateChange",
    "StepCompleted",
    "StepFailed",
    "StepPlan",
    "StepStarted",
    "TaskAnswered",
    "TaskExpired",
    "TaskOpened",
    "TaskRejected",
    "TaskSummary",
    "TaskVerified",
    "TaskWithdrawn",
    "WaitedFor",
]

_FROZEN = ConfigDict(frozen=True, extra="forbid")


# -- parts ------------------------------------------------------------------------------
class EquipmentIdentity(BaseModel):
    """Who an instrument was when the record was written."""

    model_config = _FROZEN

    vendor: str
    model: str
    serial: str
    firmware: str
    adapter: str = "in-process"
    interface: str | None = None
    """The interface it stood for in the run (``Bioreactor``, ...); run_started only."""


class StepPlan(BaseModel):
    """A step as the run was started with it (run_started lists them all)."""

    model_config = _FROZEN

    name: str
    path: list[str]
    resume: str
    max_duration_h: float | None
    max_hold_h: float | None
    expected_duration_h: float
    checks: dict[str, Spec]


class InDoubtCommand(BaseModel):
    """An instrument command journaled as intended, with no outcome journaled."""

    model_config = _FROZEN

    seq: int
    instrument: str
    method: str
    arguments: dict[str, Any]
    attempt: int = 1
    """The attempt of the step that sent it (earlier attempts' stay listed: a later
    attempt may have died before it could reconcile them)."""


# -- the run ----------------------------------------------------------------------------
class RunStarted(Payload):
    """Record 0 of every run: what is run, with what, where and by whom."""

    kind: ClassVar[RecordKind] = RecordKind.RUN_STARTED

    run_id: str
    protocol_name: str
    protocol_version: str
    protocol_source_sha256: str | None
    protocol_file: str | None
    parameters: dict[str, Any]
    steps: list[StepPlan]
    line: str
    simulated: bool
    wall_clock: str
    """"real", or "process time (reproducible simulation)" when records' wall time is
    the simulated time."""
    seed: int | None
    operator: str
    instruments: dict[str, EquipmentIdentity]
    package_versions: dict[str, str]
    operators: Literal["people", "simulated"] = "simulated"
    """Who answers the run's operator tasks: people (signing with their accounts) or
    simulated operators (``sim:...``, only on a simulated line). Records written before
    operator tasks existed read as "simulated"."""
    operator_account: SignatureShown | None = None
    """The signature of the person who started the run with ``--as`` (their account is
    ``operator``); None for a simulation nobody signed in to, and in older records."""
    simulation: SimulationInfo | None = None
    """The simulated patient and models of a run on a simulated line; None on a real
    line, over the wire, and in older records."""


class RunResumed(Payload):
    """A controller took the run up again after the one running it stopped."""

    kind: ClassVar[RecordKind] = RecordKind.RUN_RESUMED

    resumed_by: str
    state: str
    last_seq: int
    since_last_record_s: float
    completed_steps: list[str]
    interrupted_step: str | None
    resume_policy: str | None
    in_doubt_commands: list[InDoubtCommand]
    instruments: dict[str, EquipmentIdentity]
    instrument_errors_at_connect: dict[str, list[tuple[int, str]]]
    signature: SignatureShown | None = None
    """The signature of the person who resumed the run with ``--as`` (None: older
    records, simulations)."""


class PreviousController(BaseModel):
    """The controller whose claim a ``controller_claimed`` record replaced."""

    model_config = _FROZEN

    epoch: int
    host: str | None
    pid: int | None
    heartbeat_age_s: float
    """Real seconds from its last heartbeat to the claim."""
    why: str
    """``released`` (it ended cleanly), ``gone`` (its process is no more), ``stale``
    (no heartbeat within the stale interval), or ``controller lost`` / ``controller
    stopped`` (the controller service holding it: its presence ended)."""


class ControllerClaimed(Payload):
    """A controller took charge of the run: at its start, and at every resume.

    ``epoch`` counts the claims (1, 2, ...); writes by a controller with an older epoch
    are refused. In a reproducible simulation ``host`` and ``pid`` are None: its record
    is a pure function of its inputs.
    """

    kind: ClassVar[RecordKind] = RecordKind.CONTROLLER_CLAIMED

    epoch: int
    host: str | None
    pid: int | None
    taken_over_from: PreviousController | None
    """The claim replaced (None at the run's start)."""


class ControllerReleased(Payload):
    """A controller service let go of the run without ending it, for another one: it held
    the run because no live controller reached the run's instruments, and now one does
    (issue 15). The controller named ``to_controller`` takes it over by its own claim."""

    kind: ClassVar[RecordKind] = RecordKind.CONTROLLER_RELEASED

    epoch: int
    controller: str
    """The controller service that releases its claim (of epoch ``epoch``)."""
    to_controller: str | None
    """The one that reaches the run's instruments (None: whichever takes it)."""
    reason: str


class RunEnded(Payload):
    """The run reached a final state; nothing but the seal follows."""

    kind: ClassVar[RecordKind] = RecordKind.RUN_ENDED

    exit_status: str
    final_state: str
    reason: str
    completed_steps: int


class StateChange(Payload):
    """An ISA-88 state transition."""

    kind: ClassVar[RecordKind] = RecordKind.STATE_CHANGE

    from_state: str
    to_state: str
    cause: str
    step: str | None


class Command(Payload):
    """An ISA-88 command, accepted or refused."""

    kind: ClassVar[RecordKind] = RecordKind.COMMAND

    command: str
    state: str
    """The state the command met."""
    accepted: bool
    by: str
    reason: str
    refusal: str | None = None
    signature: SignatureShown | None = None
    """The signature the command was given with (a supervisor's approval of a Restart
    after a deviation; a person's remote command)."""
    request: SiteRef | None = None
    """The site record of the request, for a command from another terminal."""


# -- steps ------------------------------------------------------------------------------
class StepStarted(Payload):
    kind: ClassVar[RecordKind] = RecordKind.STEP_STARTED

    step: str
    index: int
    path: list[str]
    resume: str
    attempt: int = 1
    """2 and more: the step runs again after a controller crash."""


class StepCompleted(Payload):
    kind: ClassVar[RecordKind] = RecordKind.STEP_COMPLETED

    step: str
    index: int
    duration_s: float


class StepFailed(Payload):
    kind: ClassVar[RecordKind] = RecordKind.STEP_FAILED

    step: str
    index: int
    error_type: str
    """The exception's type name; "stopped" or "cancelled" for a Stop or an Abort."""
    error: str
    duration_s: float


# -- deviations, alarms, operators (instrument records: instrument_payloads.py; checks:
# check_payloads.py) ---------------------------------------------------------------------
class Deviation(Payload):
    """A departure from the procedure or a specification, and the policy applied."""

    kind: ClassVar[RecordKind] = RecordKind.DEVIATION

    step: str | None
    check: str
    description: str
    policy: CheckPolicy
    value: float | None = None


class Alarm(Payload):
    """Something the operators must know of now."""

    kind: ClassVar[RecordKind] = RecordKind.ALARM

    source: str
    severity: str
    message: str
    gap_started_process_time_s: float | None = None
    """For a lost connection: when the gap began (process time, epoch s)."""
    gap_ended_process_time_s: float | None = None


class OperatorAction(Payload):
    kind: ClassVar[RecordKind] = RecordKind.OPERATOR_ACTION

    operator: str
    action: str
    detail: str = ""


# -- values ----------------------------------------------------------------------------
class BatchValue(Payload):
    """A quantity of the batch (a volume, a computed dose), for later steps and review."""

    kind: ClassVar[RecordKind] = RecordKind.BATCH_VALUE

    step: str | None
    name: str
    value: Any
    """Plain JSON (see :func:`~cellauto.records.payload_base.plain_json`): it reads back as
    itself after a crash."""
    unit: str = ""

    _value = field_validator("value")(lambda cls, v: plain_json(v))


class Checkpoint(Payload):
    """Resume bookkeeping (an iteration done, an addition made), kept out of batch values."""

    kind: ClassVar[RecordKind] = RecordKind.CHECKPOINT

    step: str | None
    name: str
    value: Any = Field(description="plain JSON; read back by a resumed step")

    _value = field_validator("value")(lambda cls, v: plain_json(v))


_RUN_PAYLOADS: tuple[type[Payload], ...] = (
    RunStarted,
    RunResumed,
    ControllerClaimed,
    ControllerReleased,
    RunEnded,
    StateChange,
    Command,
    StepStarted,
    StepCompleted,
    StepFailed,
    InstrumentCommand,
    InstrumentResponse,
    Reading,
    CheckResult,
    IdentityCheck,
    Deviation,
    Alarm,
    OperatorAction,
    BatchValue,
    Checkpoint,
    *TASK_PAYLOADS,
    *MATERIAL_PAYLOADS,
    ReleasePlan,
    InstrumentWaited,
    InstrumentReleased,
)
PAYLOAD_TYPES: dict[RecordKind, type[Payload]] = {cls.kind: cls for cls in _RUN_PAYLOADS}
"""The payload model of each record kind."""
