"""Signatures: what they hold, and every refusal journaled (abuse cases 8-12)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from cellauto.errors import (
    PeopleError,
    PermissionRefusedError,
    SignatureRefusedError,
    TrainingRequiredError,
)
from cellauto.records import Journal
from cellauto.records.refs import Meaning, RecordRef
from cellauto.records.site_payloads import Signature, SignatureRefused
from cellauto.site.signatures import shown, sign, sign_in_store, utc_offset
from cellauto.site.training import parse_subject, record_training
from tests.records.site_factory import sealed_run

from .chain import TERMINAL
from .conftest import Site

CAR_T = parse_subject("car-t-autologous@1.0.0")
STATEMENT = "I connected apheresis bag AB-1 to the CliniMACS tubing set."


@pytest.fixture
def target(site: Site) -> RecordRef:
    """Record 1 of a sealed run in the same journal."""
    with Journal(site.store.location) as journal:
        sealed_run(journal, "run-1")
    with site.store.reading() as conn:
        kind, digest = conn.execute(
            "SELECT kind, hash FROM records WHERE run_id = 'run-1' AND seq = 1"
        ).fetchone()
    return RecordRef(chain="run", run_id="run-1", seq=1, hash=digest, kind=kind)


def _train(site: Site, *names: str) -> None:
    for name in names:
        record_training(
            site.store, site.sign_in("carol" if name != "carol" else "bob"), name, CAR_T
        )


def _refusal(site: Site, before: int) -> SignatureRefused:
    (refused,) = site.new_records(before)
    assert isinstance(refused, SignatureRefused)
    return refused


def test_a_signature_holds_name_meaning_time_and_what_it_relied_on(
    site: Site, target: RecordRef
) -> None:
    _train(site, "alice")
    who = site.sign_in("alice")
    ref = sign_in_store(
        site.store, who, target, Meaning.PERFORMED, STATEMENT, needed_training=[CAR_T]
    )
    (signature,) = [r for r in site.new_records(ref.seq - 1)]
    assert isinstance(signature, Signature)
    assert (signature.signer, signature.printed_name, signature.meaning) == (
        "alice",
        "Alice Tester",
        Meaning.PERFORMED,
    )
    assert signature.statement == STATEMENT and signature.signed == target
    assert (signature.time_zone, signature.utc_offset) == ("UTC", "+00:00")
    assert signature.signed_at.tzinfo is not None
    assert (signature.session_id, signature.components) == (who.session_id, "user_id+password")
    assert signature.roles == ["operator"]
    assert len(signature.training) == 1
    seen = shown(signature, ref)
    assert (seen.signer, seen.site, seen.simulated) == ("alice", ref, False)


def test_utc_offset_in_the_site_zone() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    assert utc_offset(datetime(2026, 1, 5, 9, tzinfo=UTC).astimezone(berlin)) == "+01:00"
    assert utc_offset(datetime(2026, 7, 5, 9, tzinfo=UTC).astimezone(berlin)) == "+02:00"
    assert (
        utc_offset(datetime(2026, 1, 5, tzinfo=UTC).astimezone(ZoneInfo("America/New_York")))
        == "-05:00"
    )


@pytest.mark.parametrize(
    ("signer", "meaning"),
    [
        ("bob", Meaning.PERFORMED),  # QA performs
        ("root", Meaning.VERIFIED),  # an administrator signs
        ("alice", Meaning.APPROVED),  # an operator approves
        ("carol", Meaning.RELEASED),  # a supervisor releases
    ],
)
def test_role_without_permission_refused(
    site: Site, target: RecordRef, signer: str, meaning: Meaning
) -> None:
    who = site.root() if signer == "root" else site.sign_in(signer)
    before = site.head()
    with pytest.raises(PermissionRefusedError, match="may not sign"):
        sign_in_store(site.store, who, target, meaning, STATEMENT)
    refused = _refusal(site, before)
    assert (refused.name, refused.cause, refused.target) == (signer, "permission", target)


def test_missing_training_refused(site: Site, target: RecordRef) -> None:
    before = site.head()
    with pytest.raises(TrainingRequiredError, match="alice has no valid training"):
        sign_in_store(
            site.store,
            site.sign_in("alice"),
            target,
            Meaning.PERFORMED,
            STATEMENT,
            needed_training=[CAR_T],
        )
    assert _refusal(site, before).cause == "training"


def test_signature_on_missing_record_refused(site: Site, target: RecordRef) -> None:
    before = site.head()
    ghost = target.model_copy(update={"seq": 99})
    with pytest.raises(SignatureRefusedError, match="record 99 of run run-1 does not exist"):
        sign_in_store(site.store, site.sign_in("alice"), ghost, Meaning.PERFORMED, STATEMENT)
    assert _refusal(site, before).cause == "target_missing"


def test_signature_on_changed_record_refused(site: Site, target: RecordRef) -> None:
    with site.store.transaction() as tx:
        tx.conn.execute(
            "UPDATE records SET body = replace(body, '\"value\":0', '\"value\":7')"
            " WHERE run_id = 'run-1' AND seq = 1"
        )
    before = site.head()
    with pytest.raises(SignatureRefusedError, match="its hash differs"):
        sign_in_store(site.store, site.sign_in("alice"), target, Meaning.PERFORMED, STATEMENT)
    assert _refusal(site, before).cause == "target_changed"
    stale = target.model_copy(update={"hash": "0" * 64})
    with pytest.raises(SignatureRefusedError, match="its hash differs"):
        sign_in_store(site.store, site.sign_in("alice"), stale, Meaning.PERFORMED, STATEMENT)


def test_verifier_cannot_be_performer(site: Site, target: RecordRef) -> None:
    before = site.head()
    with pytest.raises(SignatureRefusedError, match="alice performed this step"):
        sign_in_store(
            site.store,
            site.sign_in("alice"),
            target,
            Meaning.VERIFIED,
            STATEMENT,
            performer="alice",
        )
    assert _refusal(site, before).cause == "self_verification"
    ref = sign_in_store(
        site.store, site.sign_in("bob"), target, Meaning.VERIFIED, STATEMENT, performer="alice"
    )
    assert ref.seq == before + 2


def test_a_refusal_rolls_back_the_callers_transaction(site: Site, target: RecordRef) -> None:
    from cellauto.site.signatures import SignatureRefusal

    who = site.sign_in("bob")
    before = site.head()
    with pytest.raises(SignatureRefusal), site.store.transaction() as tx:
        sign(tx, who, target, Meaning.VERIFIED, STATEMENT)  # fine
        sign(tx, who, target, Meaning.PERFORMED, STATEMENT)  # QA may not perform
    assert site.head() == before


def test_a_signature_of_a_site_record(site: Site) -> None:
    with site.store.reading() as conn:
        kind, digest = conn.execute("SELECT kind, hash FROM site_records WHERE seq = 1").fetchone()
    ref = RecordRef(chain="site", seq=1, hash=digest, kind=kind)
    assert sign_in_store(site.store, site.sign_in("bob"), ref, Meaning.REVIEWED, "reviewed").seq > 1
    with pytest.raises(PeopleError):
        sign_in_store(
            site.store,
            site.sign_in("bob"),
            ref.model_copy(update={"kind": "signature"}),
            Meaning.REVIEWED,
            "x",
        )
    assert time.time_ns() > 0


def _deviation(site: Site) -> RecordRef:
    """A run record of kind deviation (body and hash agree; the run chain is not needed)."""
    import hashlib

    body = '{"kind":"deviation","run_id":"run-2","seq":0}'
    digest = hashlib.sha256(body.encode()).hexdigest()
    with site.store.transaction() as tx:
        tx.conn.execute(
            "INSERT INTO records VALUES ('run-2', 0, 'deviation', 0.0, 0, ?, ?, ?)",
            (body, "0" * 64, digest),
        )
    return RecordRef(chain="run", run_id="run-2", seq=0, hash=digest, kind="deviation")


def test_restart_after_a_deviation_is_a_supervisors_approval(site: Site) -> None:
    target = _deviation(site)
    with pytest.raises(PermissionRefusedError, match=r"needs run\.restart_after_deviation"):
        sign_in_store(site.store, site.sign_in("alice"), target, Meaning.APPROVED, "restart")
    assert sign_in_store(site.store, site.sign_in("carol"), target, Meaning.APPROVED, "restart")


def test_a_permission_verify_would_not_grant_is_refused_at_signing(
    site: Site, target: RecordRef
) -> None:
    """A caller cannot lend a signature another permission than verify will recompute: a
    supervisor's 'approved' of a record that is no deviation needs record.approve."""
    from cellauto.site.roles import Permission

    before = site.head()
    with pytest.raises(PermissionRefusedError, match=r"needs record\.approve, not run\.restart"):
        sign_in_store(
            site.store,
            site.sign_in("carol"),
            target,
            Meaning.APPROVED,
            "restart",
            permission=Permission.RUN_RESTART_AFTER_DEVIATION,
        )
    assert _refusal(site, before).cause == "permission"


def test_a_command_request_needs_the_commands_permission(site: Site) -> None:
    from cellauto.records.site_payloads import RunCommandRequested

    with site.store.transaction() as tx:
        ref = tx.append(
            RunCommandRequested(
                by="alice",
                terminal=TERMINAL,
                request_id="r1",
                run_id="run-1",
                command="stop",
                expires_at=datetime(2026, 1, 5, tzinfo=UTC),
            )
        )
    target = RecordRef(chain="site", seq=ref.seq, hash=ref.hash, kind="run_command_requested")
    with pytest.raises(PermissionRefusedError, match=r"needs run\.stop"):
        sign_in_store(site.store, site.sign_in("alice"), target, Meaning.PERFORMED, "stop")
    assert sign_in_store(site.store, site.sign_in("carol"), target, Meaning.PERFORMED, "stop")


def test_signer_refusal_for_a_controller(site: Site) -> None:
    from cellauto.site.roles import Permission
    from cellauto.site.signatures import signer_refusal

    now = time.time_ns()
    with site.store.reading() as conn:
        assert signer_refusal(conn, "alice", Permission.STEP_PERFORM, now_ns=now) is None
        assert "it needs step.perform" in str(
            signer_refusal(conn, "bob", Permission.STEP_PERFORM, now_ns=now)
        )
        assert "no valid training" in str(
            signer_refusal(conn, "alice", Permission.STEP_PERFORM, [CAR_T], now_ns=now)
        )
        assert "may not verify it" in str(
            signer_refusal(
                conn,
                "bob",
                Permission.STEP_VERIFY,
                now_ns=now,
                meaning=Meaning.VERIFIED,
                performer="bob",
            )
        )
        assert "no account" in str(signer_refusal(conn, "zed", Permission.RUN_HOLD, now_ns=now))
