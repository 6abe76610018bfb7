"""The base of every site record payload: its kind, who did it, why and from where.

Its own module so that the site records of one concern (materials and equipment,
:mod:`cellauto.records.site_payloads_mat`) can build on it while
:mod:`cellauto.records.site_payloads` lists them all in ``SITE_PAYLOAD_TYPES``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

__all__ = ["SiteKind", "SitePayload", "Terminal"]

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class SiteKind(StrEnum):
    """What a site record describes; the value is stored in the ``kind`` column."""

    POLICY_SET = "policy_set"
    ACCOUNT_CREATED = "account_created"
    ACCOUNT_CHANGED = "account_changed"
    ACCOUNT_CHANGE_REFUSED = "account_change_refused"
    PASSWORD_CHANGED = "password_changed"
    PASSWORD_CHANGE_REFUSED = "password_change_refused"
    SIGN_IN_FAILED = "sign_in_failed"
    SESSION_OPENED = "session_opened"
    SESSION_CLOSED = "session_closed"
    TRAINING_RECORDED = "training_recorded"
    TRAINING_REVOKED = "training_revoked"
    SIGNATURE = "signature"
    SIGNATURE_REFUSED = "signature_refused"
    TASK_ANSWER = "task_answer"
    RUN_COMMAND_REQUESTED = "run_command_requested"
    MATERIAL_DEFINED = "material_defined"
    LOT_RECEIVED = "lot_received"
    LOT_RELEASED = "lot_released"
    LOT_REJECTED = "lot_rejected"
    LOT_ADJUSTED = "lot_adjusted"
    LOT_ACT_REFUSED = "lot_act_refused"
    EQUIPMENT_ADDED = "equipment_added"
    EQUIPMENT_STATUS_CHANGED = "equipment_status_changed"
    CALIBRATION_RECORDED = "calibration_recorded"
    EQUIPMENT_ACT_REFUSED = "equipment_act_refused"
    DEVIATION_RAISED = "deviation_raised"
    DEVIATION_CLASSIFIED = "deviation_classified"
    DEVIATION_INVESTIGATED = "deviation_investigated"
    DEVIATION_CLOSED = "deviation_closed"
    DEVIATION_WITHDRAWN = "deviation_withdrawn"
    QC_RESULT_ENTERED = "qc_result_entered"
    QC_RESULTS_IMPORTED = "qc_results_imported"
    QC_RESULT_VERIFIED = "qc_result_verified"
    QC_RESULT_INVALIDATED = "qc_result_invalidated"
    LIMS_SCHEMA_DEFINED = "lims_schema_defined"
    BATCH_DISPOSED = "batch_disposed"
    REVIEW_ACT_REFUSED = "review_act_refused"
    ALARM_ACKNOWLEDGED = "alarm_acknowledged"
    RUN_SUBMITTED = "run_submitted"
    RUN_SUBMISSION_CANCELLED = "run_submission_cancelled"


# -- parts ------------------------------------------------------------------------------
class Terminal(BaseModel):
    """Where an act came from: Part 11's "workstation" (host, process, tty, OS user)."""

    model_config = _FROZEN

    host: str
    pid: int
    tty: str | None = None
    os_user: str
    remote_address: str | None = None
    """The client's address when the act came through the web app."""


class SitePayload(BaseModel):
    """Base of every site record payload; ``kind`` is the site record kind."""

    model_config = _FROZEN
    kind: ClassVar[SiteKind]

    by: str
    """Who did it: an account name, ``bootstrap`` or ``system``."""
    reason: str = ""
    terminal: Terminal
