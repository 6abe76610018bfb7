"""The permission matrix: every role against every permission, as a plant expects."""

from __future__ import annotations

import pytest

from cellauto.records.refs import Meaning
from cellauto.records.site_payloads import SITE_PAYLOAD_TYPES, SiteKind
from cellauto.site.roles import MEANING_PERMISSION, PERMISSIONS, Permission, Role, permissions_of

P = Permission
EXPECTED: dict[Role, set[Permission]] = {
    Role.OPERATOR: {P.RUN_START, P.RUN_HOLD, P.RUN_RESTART, P.STEP_PERFORM, P.STEP_VERIFY},
    Role.SUPERVISOR: {
        P.RUN_START,
        P.RUN_HOLD,
        P.RUN_RESTART,
        P.STEP_PERFORM,
        P.STEP_VERIFY,
        P.RUN_STOP,
        P.RUN_ABORT,
        P.RUN_RESTART_AFTER_DEVIATION,
        P.TRAINING_RECORD,
        P.RECORD_REVIEW,
        P.EQUIPMENT_MANAGE,
    },
    Role.QA: {
        P.RUN_HOLD,
        P.STEP_VERIFY,
        P.RECORD_REVIEW,
        P.RECORD_APPROVE,
        P.BATCH_RELEASE,
        P.TRAINING_RECORD,
    },
    Role.ADMINISTRATOR: {P.USERS_MANAGE, P.POLICY_SET},
}


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("permission", list(Permission))
def test_every_role_against_every_permission(role: Role, permission: Permission) -> None:
    assert (permission in PERMISSIONS[role]) == (permission in EXPECTED[role])


def test_administrator_signs_nothing_of_a_batch() -> None:
    admin = PERMISSIONS[Role.ADMINISTRATOR]
    assert not admin & set(MEANING_PERMISSION.values())


def test_qa_runs_no_equipment() -> None:
    qa = PERMISSIONS[Role.QA]
    assert not qa & {P.RUN_START, P.RUN_RESTART, P.RUN_STOP, P.RUN_ABORT, P.STEP_PERFORM}


def test_every_meaning_needs_a_permission() -> None:
    assert set(MEANING_PERMISSION) == set(Meaning)


def test_unknown_role_names_grant_nothing() -> None:
    assert permissions_of(["root", "qa"]) == PERMISSIONS[Role.QA]


def test_every_site_kind_has_its_payload_model() -> None:
    assert set(SITE_PAYLOAD_TYPES) == set(SiteKind)
    assert all(SITE_PAYLOAD_TYPES[kind].kind is kind for kind in SiteKind)
