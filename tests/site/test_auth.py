"""Signing in and lockout (abuse cases 1-4, 6, 21)."""

from __future__ import annotations

import time

import pytest

from cellauto.errors import (
    AccountLockedError,
    AuthenticationError,
    JournalError,
    PasswordExpiredError,
    PermissionRefusedError,
)
from cellauto.records.site_chain import read_site_records
from cellauto.records.site_payloads import (
    AccountChanged,
    Argon2Params,
    PasswordChanged,
    SessionClosed,
    SessionOpened,
    SignInFailed,
)
from cellauto.site.accounts import change_status, set_site_policy
from cellauto.site.auth import WRONG, close_session, open_session
from cellauto.site.password_changes import change_password
from cellauto.site.passwords import Hasher
from cellauto.site.replay import confirm_account, replay_problem
from cellauto.site.sessions import Session

from .chain import DAY_NS, POLICY
from .conftest import Site, own_password


def test_wrong_password_is_counted_and_journaled(site: Site) -> None:
    before = site.head()
    with pytest.raises(AuthenticationError) as raised:
        site.sign_in("alice", "not her password")
    assert str(raised.value) == WRONG
    (failed,) = site.new_records(before)
    assert isinstance(failed, SignInFailed)
    assert (failed.cause, failed.consecutive, failed.account_exists) == ("wrong_password", 1, True)
    assert failed.purpose == "test"
    assert "not her password" not in failed.model_dump_json()
    with pytest.raises(AuthenticationError):
        site.sign_in("alice", "not her password")
    assert site.new_records(before)[-1].consecutive == 2  # type: ignore[attr-defined]


def test_third_failure_locks_the_account(site: Site) -> None:
    for _ in range(2):
        with pytest.raises(AuthenticationError):
            site.sign_in("alice", "not her password")
    before = site.head()
    with pytest.raises(AuthenticationError):
        site.sign_in("alice", "not her password")
    failed, lock = site.new_records(before)
    assert isinstance(failed, SignInFailed) and failed.consecutive == 3
    assert isinstance(lock, AccountChanged)
    assert (lock.by, lock.field, lock.old, lock.new) == ("system", "status", "active", "locked")
    assert lock.reason == "3 consecutive failed sign-ins"


def test_a_success_ends_the_run_of_failures(site: Site) -> None:
    for _ in range(2):
        with pytest.raises(AuthenticationError):
            site.sign_in("alice", "not her password")
    change_password(site.store, site.sign_in("alice"), "a fresh secret phrase")
    for _ in range(2):
        with pytest.raises(AuthenticationError):
            site.sign_in("alice", "not her password")
    assert site.sign_in("alice", "a fresh secret phrase").account.failures == 2


def test_unknown_user_same_message_same_time(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    dummies: list[str] = []
    real = Hasher.dummy_verify

    def spy(self: Hasher, password: str) -> None:
        dummies.append(password)
        real(self, password)

    monkeypatch.setattr(Hasher, "dummy_verify", spy)
    before = site.head()
    with pytest.raises(AuthenticationError) as raised:
        site.sign_in("mallory", "any password at all")
    assert str(raised.value) == WRONG
    assert dummies == ["any password at all"]  # the same argon2 work as a known user
    (failed,) = site.new_records(before)
    assert isinstance(failed, SignInFailed)
    assert (failed.cause, failed.account_exists, failed.name_given) == (
        "unknown_user",
        False,
        "mallory",
    )


def test_locked_account_refused_with_right_password(site: Site) -> None:
    change_status(site.store, site.root(), "alice", "locked", reason="investigation")
    before = site.head()
    with pytest.raises(AccountLockedError, match="users unlock alice"):
        site.sign_in("alice")
    (failed,) = site.new_records(before)
    assert isinstance(failed, SignInFailed)
    assert (failed.cause, failed.consecutive) == ("locked", 0)
    change_status(site.store, site.root(), "alice", "active", reason="cleared")
    assert site.sign_in("alice").account.status == "active"


def test_expired_password_must_be_changed_first(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = time.time_ns() + 91 * DAY_NS  # the policy's 90 days later
    monkeypatch.setattr(time, "time_ns", lambda: now)
    before = site.head()
    with pytest.raises(PasswordExpiredError, match="expired; set a new one first"):
        site.sign_in("alice")
    (failed,) = site.new_records(before)
    assert isinstance(failed, SignInFailed) and failed.cause == "password_expired"
    who = site.sign_in("alice", password_change=True)
    change_password(site.store, who, "the next secret phrase")
    assert site.sign_in("alice", "the next secret phrase").account.name == "alice"


def test_edited_accounts_row_refused_at_sign_in(site: Site) -> None:
    with site.store.transaction() as tx:
        tx.conn.execute("UPDATE accounts SET roles = '[\"qa\"]' WHERE name = 'alice'")
    with pytest.raises(JournalError, match=r"accounts table edited: row 'alice' roles"):
        site.sign_in("alice")


def test_session_person_signs_with_the_password_only() -> None:
    clock = [0.0]
    session = Session("alice", opened_wall_ns=0, idle_min=15, monotonic=lambda: clock[0])
    assert session.sign_components("alice") == "password"
    assert session.sign_components("bob") == "user_id+password"
    clock[0] = 15 * 60 + 1
    assert session.sign_components("alice") == "user_id+password"
    assert session.closed == "idle"


def test_a_session_is_passed_through(site: Site) -> None:
    session = Session("alice", opened_wall_ns=0, idle_min=15)
    who = site.sign_in("alice", own_password("alice"), session=session)
    assert (who.session_id, who.components) == (session.id, "password")
    assert site.sign_in("bob", session=session).components == "user_id+password"


def test_a_hash_below_the_policy_is_redone_at_sign_in(site: Site) -> None:
    stronger = POLICY.model_copy(
        update={"argon2": Argon2Params(time_cost=2, memory_kib=16, parallelism=1)}
    )
    set_site_policy(site.store, site.root(), stronger, reason="RFC 9106 review")
    before = site.head()
    assert site.sign_in("alice").account.name == "alice"
    (rehash,) = site.new_records(before)
    assert isinstance(rehash, PasswordChanged)
    assert (rehash.change, rehash.by, rehash.must_change) == ("rehash", "system", False)
    with site.store.reading() as conn:
        _, argon2 = confirm_account(conn, "alice")  # type: ignore[misc]
        assert argon2.startswith("$argon2id$v=19$m=16,t=2,p=1$")
        assert replay_problem(conn, list(read_site_records(conn))) is None
    before = site.head()
    site.sign_in("alice")
    assert site.new_records(before) == []


def test_only_an_administrator_sets_the_policy(site: Site) -> None:
    with pytest.raises(PermissionRefusedError, match=r"needs policy\.set"):
        set_site_policy(site.store, site.sign_in("carol"), POLICY, reason="x")


def test_open_and_close_a_session(site: Site) -> None:
    who = site.sign_in("alice")
    before = site.head()
    session = open_session(site.store, who, purpose="run car-t-autologous")
    assert (session.id, session.account, session.idle_s) == (who.session_id, "alice", 15 * 60)
    again = site.sign_in("alice", session=session)
    assert (again.session_id, again.components) == (session.id, "password")
    close_session(site.store, session, "exit", who.terminal)
    opened, closed = site.new_records(before)
    assert isinstance(opened, SessionOpened) and opened.session_id == session.id
    assert isinstance(closed, SessionClosed) and closed.cause == "exit"
    assert site.sign_in("alice", session=session).components == "user_id+password"
