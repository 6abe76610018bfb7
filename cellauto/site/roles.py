"""Roles and what each may do: the permission matrix of a plant (pure data).

Segregation of duties (EU GMP Annex 11 §12, 21 CFR 11.10(g)): an administrator manages
accounts and signs nothing of a batch; QA verifies, reviews and releases but never runs
equipment or performs a step; a supervisor does what an operator does and also stops,
aborts, and restarts a run after a deviation. QC (the laboratory) enters and verifies
release-test results and nothing of manufacturing; QA classifies and closes deviations,
defines the LIMS mappings, invalidates a result and releases or rejects a batch, but
never enters the results it releases on. Hold is open to every operational role because
it is the safe direction; anyone on a batch may raise a deviation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from types import MappingProxyType

from cellauto.records.refs import Meaning

__all__ = [
    "EXCLUSIVE_ROLES",
    "MEANING_PERMISSION",
    "PERMISSIONS",
    "Permission",
    "Role",
    "holders",
    "permissions_of",
]


class Role(StrEnum):
    OPERATOR = "operator"
    SUPERVISOR = "supervisor"
    QA = "qa"
    QC = "qc"
    """The QC laboratory: enters, imports and verifies release-test results."""
    ADMINISTRATOR = "administrator"


class Permission(StrEnum):
    RUN_START = "run.start"
    RUN_HOLD = "run.hold"
    RUN_RESTART = "run.restart"
    RUN_RESTART_AFTER_DEVIATION = "run.restart_after_deviation"
    RUN_STOP = "run.stop"
    RUN_ABORT = "run.abort"
    STEP_PERFORM = "step.perform"
    STEP_VERIFY = "step.verify"
    RECORD_REVIEW = "record.review"
    RECORD_APPROVE = "record.approve"
    BATCH_RELEASE = "batch.release"
    TRAINING_RECORD = "training.record"
    USERS_MANAGE = "users.manage"
    """Add, lock, unlock, disable, grant, revoke, reset a password."""
    POLICY_SET = "policy.set"
    MATERIAL_DEFINE = "material.define"
    LOT_RECEIVE = "lot.receive"
    LOT_RELEASE = "lot.release"
    """Release or reject a lot (QA only; never the person who received it)."""
    LOT_ADJUST = "lot.adjust"
    EQUIPMENT_MANAGE = "equipment.manage"
    """Add an instrument to the registry, change its status, record its calibration."""
    DEVIATION_RAISE = "deviation.raise"
    DEVIATION_CLASSIFY = "deviation.classify"
    DEVIATION_INVESTIGATE = "deviation.investigate"
    DEVIATION_CLOSE = "deviation.close"
    """Close a deviation, or withdraw one raised in error."""
    QC_ENTER = "qc.enter"
    """Enter a result by hand or import a LIMS export."""
    QC_VERIFY = "qc.verify"
    QC_INVALIDATE = "qc.invalidate"
    QC_SCHEMA = "qc.schema"
    """Define a LIMS export mapping."""
    ALARM_ACKNOWLEDGE = "alarm.acknowledge"
    """Acknowledge a run's alarm with a comment (an audited act, not a signature)."""


_OPERATOR = frozenset(
    {
        Permission.RUN_START,
        Permission.RUN_HOLD,
        Permission.RUN_RESTART,
        Permission.STEP_PERFORM,
        Permission.STEP_VERIFY,
        Permission.LOT_RECEIVE,
        Permission.DEVIATION_RAISE,
        Permission.ALARM_ACKNOWLEDGE,
    }
)

PERMISSIONS: Mapping[Role, frozenset[Permission]] = MappingProxyType(
    {
        Role.OPERATOR: _OPERATOR,
        Role.SUPERVISOR: _OPERATOR
        | {
            Permission.RUN_STOP,
            Permission.RUN_ABORT,
            Permission.RUN_RESTART_AFTER_DEVIATION,
            Permission.TRAINING_RECORD,
            Permission.RECORD_REVIEW,
            Permission.MATERIAL_DEFINE,
            Permission.LOT_ADJUST,
            Permission.EQUIPMENT_MANAGE,
            Permission.DEVIATION_INVESTIGATE,
        },
        Role.QA: frozenset(
            {
                Permission.RUN_HOLD,
                Permission.STEP_VERIFY,
                Permission.RECORD_REVIEW,
                Permission.RECORD_APPROVE,
                Permission.BATCH_RELEASE,
                Permission.TRAINING_RECORD,
                Permission.MATERIAL_DEFINE,
                Permission.LOT_RELEASE,
                Permission.DEVIATION_RAISE,
                Permission.DEVIATION_CLASSIFY,
                Permission.DEVIATION_INVESTIGATE,
                Permission.DEVIATION_CLOSE,
                Permission.QC_VERIFY,
                Permission.QC_INVALIDATE,
                Permission.QC_SCHEMA,
                Permission.ALARM_ACKNOWLEDGE,
            }
        ),
        Role.QC: frozenset(
            {
                Permission.QC_ENTER,
                Permission.QC_VERIFY,
                Permission.DEVIATION_RAISE,
            }
        ),
        Role.ADMINISTRATOR: frozenset({Permission.USERS_MANAGE, Permission.POLICY_SET}),
    }
)
"""What each role may do. QA may Hold (stopping harm is everyone's duty) but not run."""

MEANING_PERMISSION: Mapping[Meaning, Permission] = MappingProxyType(
    {
        Meaning.PERFORMED: Permission.STEP_PERFORM,
        Meaning.VERIFIED: Permission.STEP_VERIFY,
        Meaning.REVIEWED: Permission.RECORD_REVIEW,
        Meaning.APPROVED: Permission.RECORD_APPROVE,
        Meaning.RELEASED: Permission.BATCH_RELEASE,
        Meaning.REJECTED: Permission.STEP_VERIFY,
    }
)
"""The permission a signature of each meaning needs (of an operator step; a command's
signature needs the command's permission instead)."""

EXCLUSIVE_ROLES: frozenset[Role] = frozenset({Role.ADMINISTRATOR})
"""Roles an account cannot hold together with any other role."""


def permissions_of(roles: Iterable[str]) -> frozenset[Permission]:
    """The union of the permissions of ``roles`` (unknown role names grant nothing)."""
    granted: set[Permission] = set()
    for name in roles:
        try:
            granted |= PERMISSIONS[Role(name)]
        except ValueError:
            continue
    return frozenset(granted)


def holders(permission: Permission) -> str:
    """The roles holding ``permission``, in words (``"qa"``, ``"qc or qa"``)."""
    return " or ".join(role.value for role in Role if permission in PERMISSIONS[role])
