"""One pydantic model per site record kind: what the site's chain says about people.

The site chain (``chain="site"``, see :mod:`cellauto.records.refs`) holds every act on
accounts, passwords, training and signatures, as run records hold a run's acts: each
record is validated before it is written, hash-chained, covered by a signed ledger
entry, and read back as the same model. Every record names who did it (``by``: an
account name, ``"bootstrap"`` for the first administrator, ``"system"`` for an
automatic lock), why (``reason``) and from where (``terminal``), as Part 11's audit
trail asks (§11.10(e)).

No record holds a password or its argon2 hash: only the SHA-256 *commitment* of the
argon2 string, which lives in the ``credentials`` table, so a site export carries no
password material while ``verify`` can still tell whether a stored hash was swapped.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from cellauto.records.refs import HASH_PATTERN, Meaning, RecordRef, SignatureShown, SiteRef
from cellauto.records.site_payload_base import SiteKind, SitePayload, Terminal
from cellauto.records.site_payloads_mat import SITE_MATERIAL_PAYLOADS
from cellauto.records.site_payloads_review import SITE_REVIEW_PAYLOADS

__all__ = [
    "SITE_PAYLOAD_TYPES",
    "AccountChangeRefused",
    "AccountChanged",
    "AccountCreated",
    "AlarmAcknowledged",
    "Argon2Params",
    "PasswordChangeRefused",
    "PasswordChanged",
    "PolicySet",
    "RunCommandRequested",
    "RunSubmissionCancelled",
    "RunSubmitted",
    "SessionClosed",
    "SessionOpened",
    "SignInFailed",
    "Signature",
    "SignatureRefused",
    "SiteKind",
    "SitePayload",
    "SitePolicy",
    "TaskAnswer",
    "Terminal",
    "TrainingRecorded",
    "TrainingRevoked",
    "TrainingSubject",
]

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class Argon2Params(BaseModel):
    """argon2id cost parameters; the default is RFC 9106's low-memory choice."""

    model_config = _FROZEN

    time_cost: int = Field(3, ge=1)
    memory_kib: int = Field(65536, ge=8)
    parallelism: int = Field(4, ge=1)
    hash_len: int = Field(32, ge=16)
    salt_len: int = Field(16, ge=8)


class SitePolicy(BaseModel):
    """The site's rules for passwords, lockout, sessions, training and time zone."""

    model_config = _FROZEN

    time_zone: str = "UTC"
    """IANA name; signatures are shown in it with their UTC offset."""
    min_password_length: int = Field(12, ge=8, le=128)
    password_history: int = Field(5, ge=0, le=24)
    """A new password may not be any of the account's last N."""
    password_expiry_days: int | None = Field(90, ge=1)
    """None: passwords never expire (a site's recorded choice)."""
    max_failures: int = Field(3, ge=1, le=10)
    """Consecutive failed sign-ins that lock the account."""
    session_idle_min: int = Field(15, ge=1, le=240)
    training_validity_days: int | None = Field(365, ge=1)
    """The default expiry of a training record; None: no default (must be given)."""
    argon2: Argon2Params = Argon2Params()


class TrainingSubject(BaseModel):
    """What a person is trained on: a protocol (by name) or an SOP, at a version or any."""

    model_config = _FROZEN

    kind: Literal["protocol", "sop"]
    name: str = Field(min_length=1)
    version: str | None = None
    """None: every version."""


# -- the records ------------------------------------------------------------------------
class PolicySet(SitePayload):
    kind: ClassVar[SiteKind] = SiteKind.POLICY_SET
    old: SitePolicy | None
    new: SitePolicy


class AccountCreated(SitePayload):
    kind: ClassVar[SiteKind] = SiteKind.ACCOUNT_CREATED
    name: str
    full_name: str
    roles: list[str]
    password_commitment: str = Field(pattern=HASH_PATTERN)
    """SHA-256 of the argon2 string stored in ``credentials``."""
    must_change: bool
    """True when someone else chose the password (an administrator)."""
    password_expires_on: date | None
    bootstrap: bool = False


class AccountChanged(SitePayload):
    """A change of one field: lock, unlock, disable, grant, revoke, rename."""

    kind: ClassVar[SiteKind] = SiteKind.ACCOUNT_CHANGED
    name: str
    field: Literal["full_name", "roles", "status"]
    old: str | list[str]
    new: str | list[str]


class AccountChangeRefused(SitePayload):
    kind: ClassVar[SiteKind] = SiteKind.ACCOUNT_CHANGE_REFUSED
    name: str
    change: str
    """What was asked (``grant qa``, ``unlock``, ``add``)."""
    cause: str
    detail: str = ""


class PasswordChanged(SitePayload):
    kind: ClassVar[SiteKind] = SiteKind.PASSWORD_CHANGED
    name: str
    commitment: str = Field(pattern=HASH_PATTERN)
    must_change: bool
    expires_on: date | None
    change: Literal["set", "reset", "rehash"]


class PasswordChangeRefused(SitePayload):
    kind: ClassVar[SiteKind] = SiteKind.PASSWORD_CHANGE_REFUSED
    name: str
    cause: str
    """``too_short``, ``in_history``, ``contains_name``, ... (never the password)."""


class SignInFailed(SitePayload):
    kind: ClassVar[SiteKind] = SiteKind.SIGN_IN_FAILED
    name_given: str = Field(max_length=64)
    account_exists: bool
    cause: Literal[
        "wrong_password", "unknown_user", "locked", "disabled", "password_expired", "must_change"
    ]
    consecutive: int = Field(ge=0)
    """Consecutive failures of the account after this one (0 when not counted)."""
    purpose: str
    """What the sign-in was for (``answer task 7F3K2Q9A``, ``users lock``)."""


class SessionOpened(SitePayload):
    kind: ClassVar[SiteKind] = SiteKind.SESSION_OPENED
    session_id: str
    name: str
    purpose: str


class SessionClosed(SitePayload):
    kind: ClassVar[SiteKind] = SiteKind.SESSION_CLOSED
    session_id: str
    name: str
    cause: Literal["exit", "idle", "lock"]


class TrainingRecorded(SitePayload):
    kind: ClassVar[SiteKind] = SiteKind.TRAINING_RECORDED
    trainee: str
    subject: TrainingSubject
    trained_on: date
    expires_on: date | None
    evidence: str = ""


class TrainingRevoked(SitePayload):
    kind: ClassVar[SiteKind] = SiteKind.TRAINING_REVOKED
    trainee: str
    subject: TrainingSubject


class Signature(SitePayload):
    """An electronic signature (§11.50, §11.70): linked to what it signs by hash."""

    kind: ClassVar[SiteKind] = SiteKind.SIGNATURE
    signer: str
    printed_name: str
    meaning: Meaning
    statement: str
    """The exact text shown to the signer."""
    signed: RecordRef
    signed_at: datetime
    time_zone: str
    utc_offset: str
    session_id: str
    components: Literal["user_id+password", "password"]
    """What the signer entered (§11.200(a)(1)): both at the first signing of a session."""
    roles: list[str]
    training: list[SiteRef] = []
    """The training records relied on."""


class SignatureRefused(SitePayload):
    kind: ClassVar[SiteKind] = SiteKind.SIGNATURE_REFUSED
    name: str
    meaning: Meaning | None
    target: RecordRef | None
    task_id: str | None = None
    run_id: str | None = None
    cause: str
    """``permission``, ``training``, ``self_verification``, ``target_missing``,
    ``target_changed``, ``task_not_open``, ``wrong_run``, ..."""
    detail: str = ""


class AlarmAcknowledged(SitePayload):
    """A person acknowledged a run's alarm, with a comment: an audited act of the person
    (who, when, from where), not an electronic signature."""

    kind: ClassVar[SiteKind] = SiteKind.ALARM_ACKNOWLEDGED
    run_id: str
    alarm: RecordRef
    """The run's ``alarm`` record (chain ``run``, its seq and hash)."""
    comment: str = Field(min_length=3, max_length=500)
    session_id: str
    """The session of the person (the console's or the web app's) the act came from."""


class TaskAnswer(SitePayload):
    """A person's answer to an operator task of a run, signed by ``signature``."""

    kind: ClassVar[SiteKind] = SiteKind.TASK_ANSWER
    task_id: str
    run_id: str
    phase: Literal["perform", "verify"]
    target: RecordRef
    value: Any = None
    reject: bool = False
    signature: SiteRef


class RunCommandRequested(SitePayload):
    """Hold, Restart, Stop or Abort asked of a run from another process."""

    kind: ClassVar[SiteKind] = SiteKind.RUN_COMMAND_REQUESTED
    request_id: str
    run_id: str
    command: Literal["hold", "restart", "stop", "abort"]
    expires_at: datetime


class RunSubmitted(SitePayload):
    """A person put a batch in the run queue (``cellauto run --queue``): a controller of
    ``line`` runs it under ``run_id`` (its projection: a ``run_queue`` row)."""

    kind: ClassVar[SiteKind] = SiteKind.RUN_SUBMITTED
    run_id: str
    protocol_name: str
    protocol_version: str
    protocol_source_sha256: str
    parameters: dict[str, Any]
    line: str | None
    """The line that runs it (a controller's ``--line``); None: any."""
    priority: int = 0
    signature: SignatureShown | None = None
    """The submitter's signature (``--as``); None for a rehearsal submitted unsigned."""
    seed: int | None = None
    """The simulation's seed (``--seed``): on a controller whose line gives each run its
    own simulated line (``line_per_run``), it draws the run's patient and world."""


class RunSubmissionCancelled(SitePayload):
    """A person took a queued run back before a controller took it (``cellauto queue
    cancel``; ``reason`` says why); its ``run_queue`` row goes ``cancelled``."""

    kind: ClassVar[SiteKind] = SiteKind.RUN_SUBMISSION_CANCELLED
    run_id: str


_PEOPLE_PAYLOADS: tuple[type[SitePayload], ...] = (
    PolicySet,
    AccountCreated,
    AccountChanged,
    AccountChangeRefused,
    PasswordChanged,
    PasswordChangeRefused,
    SignInFailed,
    SessionOpened,
    SessionClosed,
    TrainingRecorded,
    TrainingRevoked,
    Signature,
    SignatureRefused,
    TaskAnswer,
    RunCommandRequested,
    AlarmAcknowledged,
    RunSubmitted,
    RunSubmissionCancelled,
)

SITE_PAYLOAD_TYPES: dict[SiteKind, type[SitePayload]] = {
    cls.kind: cls for cls in (*_PEOPLE_PAYLOADS, *SITE_MATERIAL_PAYLOADS, *SITE_REVIEW_PAYLOADS)
}
