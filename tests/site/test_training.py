"""Training records and the gate (abuse cases 10, 16)."""

from __future__ import annotations

import time
from datetime import date, timedelta

import pytest

from cellauto.errors import BadInputError, JournalError, PeopleError, PermissionRefusedError
from cellauto.records.site_payloads import AccountChangeRefused, TrainingRecorded, TrainingSubject
from cellauto.site.policy import site_date
from cellauto.site.training import (
    parse_subject,
    record_training,
    revoke_training,
    subject_text,
    training_gap,
)

from .chain import POLICY
from .conftest import Site

CAR_T = parse_subject("car-t-autologous@1.0.0")


def _gap(site: Site, name: str, *needed: TrainingSubject) -> str | None:
    with site.store.reading() as conn:
        return training_gap(conn, name, needed, now_ns=time.time_ns())


def _today() -> date:
    return site_date(POLICY, time.time_ns())


@pytest.mark.parametrize(
    ("text", "subject"),
    [
        (
            "car-t-autologous@1.0.0",
            TrainingSubject(kind="protocol", name="car-t-autologous", version="1.0.0"),
        ),
        ("car-t-autologous", TrainingSubject(kind="protocol", name="car-t-autologous")),
        ("sop:SOP-CT-017@4", TrainingSubject(kind="sop", name="SOP-CT-017", version="4")),
    ],
)
def test_subjects_parse_and_print(text: str, subject: TrainingSubject) -> None:
    assert parse_subject(text) == subject
    assert subject_text(subject) == text


@pytest.mark.parametrize("text", ["", "@1", "car-t@", "sop:", "x:y@1", "a@1@2"])
def test_bad_subjects(text: str) -> None:
    with pytest.raises(BadInputError, match="is not PROTOCOL"):
        parse_subject(text)


def test_recorded_training_closes_the_gap(site: Site) -> None:
    assert "alice has no valid training for car-t-autologous 1.0.0;" in str(
        _gap(site, "alice", CAR_T)
    )
    day_before = _today()
    record_training(site.store, site.sign_in("carol"), "alice", CAR_T, evidence="OJT form 12")
    (recorded,) = [r for r in site.records() if isinstance(r, TrainingRecorded)]
    assert recorded.trained_on in (day_before, _today())  # (a test run across midnight)
    assert recorded.expires_on == recorded.trained_on + timedelta(days=365)
    assert _gap(site, "alice", CAR_T) is None
    # every version covers a specific one; a specific one does not cover another
    assert _gap(site, "alice", parse_subject("car-t-autologous@2.0.0")) is not None
    record_training(site.store, site.sign_in("bob"), "alice", parse_subject("car-t-autologous"))
    assert _gap(site, "alice", parse_subject("car-t-autologous@2.0.0")) is None


def test_expired_training_refused_naming_it(site: Site) -> None:
    old = parse_subject("car-t-autologous@0.9.0")
    start = _today() - timedelta(days=400)
    record_training(
        site.store,
        site.sign_in("carol"),
        "alice",
        old,
        trained_on=start,
        expires_on=start + timedelta(days=30),
    )
    record_training(
        site.store,
        site.sign_in("carol"),
        "alice",
        CAR_T,
        trained_on=start,
        expires_on=start + timedelta(days=30),
    )
    gap = _gap(site, "alice", CAR_T)
    assert gap == (
        "alice has no valid training for car-t-autologous 1.0.0 (recorded: car-t-autologous@0.9.0,"
        f" expired {start + timedelta(days=30)}; car-t-autologous@1.0.0,"
        f" expired {start + timedelta(days=30)}); a supervisor or QA records it with"
        " `cellauto training add alice --for car-t-autologous@1.0.0 --as NAME`"
    )


def test_revoked_training_is_no_training(site: Site) -> None:
    record_training(site.store, site.sign_in("carol"), "alice", CAR_T)
    revoke_training(site.store, site.sign_in("bob"), "alice", CAR_T, reason="failed audit")
    assert "car-t-autologous@1.0.0, revoked" in str(_gap(site, "alice", CAR_T))
    with pytest.raises(PeopleError, match="revoked already"):
        revoke_training(site.store, site.sign_in("bob"), "alice", CAR_T, reason="again")


def test_no_training_for_oneself(site: Site) -> None:
    before = site.head()
    with pytest.raises(PermissionRefusedError, match="their own training"):
        record_training(site.store, site.sign_in("carol"), "carol", CAR_T, reason="self")
    (refusal,) = site.new_records(before)
    assert isinstance(refusal, AccountChangeRefused)
    assert (refusal.by, refusal.name, refusal.cause) == ("carol", "carol", "self")


@pytest.mark.parametrize(("who", "cause"), [("alice", "permission"), ("root", "permission")])
def test_only_supervisors_and_qa_record_training(site: Site, who: str, cause: str) -> None:
    before = site.head()
    with pytest.raises(PermissionRefusedError, match="a supervisor or QA does"):
        record_training(
            site.store, site.sign_in(who) if who != "root" else site.root(), "bob", CAR_T
        )
    (refusal,) = site.new_records(before)
    assert isinstance(refusal, AccountChangeRefused) and refusal.cause == cause


def test_trainee_must_be_active(site: Site) -> None:
    from cellauto.site.accounts import change_status

    change_status(site.store, site.root(), "alice", "locked", reason="leave")
    with pytest.raises(PeopleError, match="account is locked"):
        record_training(site.store, site.sign_in("carol"), "alice", CAR_T)


def test_bad_dates_write_nothing(site: Site) -> None:
    before = site.head()
    with pytest.raises(BadInputError, match="in the future"):
        record_training(
            site.store,
            site.sign_in("carol"),
            "alice",
            CAR_T,
            trained_on=_today() + timedelta(days=2),
        )
    with pytest.raises(BadInputError, match="give --expires DATE or leave it out"):
        record_training(site.store, site.sign_in("carol"), "alice", CAR_T, expires_on=None)
    assert site.new_records(before) == []


def test_an_edited_training_row_is_refused_on_use(site: Site) -> None:
    start = _today() - timedelta(days=400)
    record_training(
        site.store,
        site.sign_in("carol"),
        "alice",
        CAR_T,
        trained_on=start,
        expires_on=start + timedelta(days=1),
    )
    with site.store.transaction() as tx:
        tx.conn.execute("UPDATE training SET expires_on = '2999-01-01'")
    with pytest.raises(
        JournalError, match=r"training table edited: row alice/car-t-autologous@1\.0\.0"
    ):
        _gap(site, "alice", CAR_T)
