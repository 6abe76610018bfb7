"""The permission matrix: every role against every permission, as a plant expects."""

from __future__ import annotations

import pytest

from cellauto.records.refs import Meaning
from cellauto.records.site_payloads import SITE_PAYLOAD_TYPES, SiteKind
from cellauto.site.roles import MEANING_PERMISSION, PERMISSIONS, Permission, Role, permissions_of

P = Permission
EXPECTED: dict[Role, set[Permission]] = {
    Role.OPERATOR: {
        P.RUN_START,
        P.RUN_HOLD,
        P.RUN_RESTART,
        P.STEP_PERFORM,
        P.STEP_VERIFY,
        P.LOT_RECEIVE,
        P.DEVIATION_RAISE,
        P.ALARM_ACKNOWLEDGE,
    },
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
        P.LOT_RECEIVE,
        P.MATERIAL_DEFINE,
        P.LOT_ADJUST,
        P.EQUIPMENT_MANAGE,
        P.DEVIATION_RAISE,
        P.DEVIATION_INVESTIGATE,
        P.ALARM_ACKNOWLEDGE,
    },
    Role.QA: {
        P.RUN_HOLD,
        P.STEP_VERIFY,
        P.RECORD_REVIEW,
        P.RECORD_APPROVE,
        P.BATCH_RELEASE,
        P.TRAINING_RECORD,
        P.MATERIAL_DEFINE,
        P.LOT_RELEASE,
        P.DEVIATION_RAISE,
        P.DEVIATION_CLASSIFY,
        P.DEVIATION_INVESTIGATE,
        P.DEVIATION_CLOSE,
        P.QC_VERIFY,
        P.QC_INVALIDATE,
        P.QC_SCHEMA,
        P.ALARM_ACKNOWLEDGE,
    },
    Role.QC: {P.QC_ENTER, P.QC_VERIFY, P.DEVIATION_RAISE},
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


def test_only_qa_releases_or_rejects_lots_and_qa_never_receives() -> None:
    assert {r for r in Role if P.LOT_RELEASE in PERMISSIONS[r]} == {Role.QA}
    assert P.LOT_RECEIVE not in PERMISSIONS[Role.QA]
    assert {r for r in Role if P.LOT_ADJUST in PERMISSIONS[r]} == {Role.SUPERVISOR}


def test_a_lot_decision_is_signed_with_lot_release() -> None:
    from cellauto.records.refs import RecordRef
    from cellauto.records.site_payloads_mat import LotRejected, LotReleased
    from cellauto.site.signing_check import needed_permission
    from tests.records.site_factory import TERMINAL

    target = RecordRef(chain="site", seq=3, hash="0" * 64, kind="lot_released")
    who = {"by": "bob", "terminal": TERMINAL}
    released = LotReleased(**who, lot_id="v/L1")
    rejected = LotRejected(**who, lot_id="v/L1", cause="out of spec")
    assert needed_permission(Meaning.RELEASED, target, released) == P.LOT_RELEASE
    assert needed_permission(Meaning.REJECTED, target, rejected) == P.LOT_RELEASE


def test_qc_enters_results_and_qa_never_does() -> None:
    assert {r for r in Role if P.QC_ENTER in PERMISSIONS[r]} == {Role.QC}
    assert {r for r in Role if P.BATCH_RELEASE in PERMISSIONS[r]} == {Role.QA}
    assert {r for r in Role if P.DEVIATION_CLOSE in PERMISSIONS[r]} == {Role.QA}
    assert not PERMISSIONS[Role.QC] & {P.RUN_START, P.STEP_PERFORM, P.BATCH_RELEASE}


def test_review_acts_are_signed_with_their_own_permission() -> None:
    from cellauto.records.refs import RecordRef
    from cellauto.records.site_payloads_review import DeviationWithdrawn, QcResultVerified
    from cellauto.site.signing_check import needed_permission
    from tests.records.site_factory import TERMINAL

    target = RecordRef(chain="site", seq=3, hash="0" * 64, kind="deviation_withdrawn")
    who = {"by": "bob", "terminal": TERMINAL}
    withdrawn = DeviationWithdrawn(
        **who,
        deviation_id="DEV-0123456789ab-S01",
        run_id="0123456789ab" * 2,
        cause="raised on the wrong batch",
    )
    verified = QcResultVerified(
        **who,
        run_id="0123456789ab" * 2,
        result_id="QC-0123456789ab-viability-01",
        entry={"seq": 2, "hash": "0" * 64},
    )
    assert needed_permission(Meaning.APPROVED, target, withdrawn) == P.DEVIATION_CLOSE
    assert needed_permission(Meaning.VERIFIED, target, verified) == P.QC_VERIFY


def test_every_meaning_needs_a_permission() -> None:
    assert set(MEANING_PERMISSION) == set(Meaning)


def test_unknown_role_names_grant_nothing() -> None:
    assert permissions_of(["root", "qa"]) == PERMISSIONS[Role.QA]


def test_every_site_kind_has_its_payload_model() -> None:
    assert set(SITE_PAYLOAD_TYPES) == set(SiteKind)
    assert all(SITE_PAYLOAD_TYPES[kind].kind is kind for kind in SiteKind)
