"""Password hashing and the new-password rules (NIST SP 800-63B, no composition rules)."""

from __future__ import annotations

from typing import get_args

import pytest

from cellauto.errors import JournalError, PasswordExpiredError, PasswordPolicyError
from cellauto.records.site_payloads import Argon2Params, PasswordChangeRefused
from cellauto.site.password_changes import change_password, reset_password
from cellauto.site.passwords import (
    Hasher,
    PasswordCause,
    check_new_password,
    commitment,
    describe_cause,
)

from .chain import CHEAP, POLICY
from .conftest import Site, own_password

GOOD = "correct horse battery"


@pytest.fixture(scope="module")
def hasher() -> Hasher:
    return Hasher(CHEAP)


def test_hash_is_argon2id_with_the_policy_parameters(hasher: Hasher) -> None:
    stored = hasher.hash(GOOD)
    assert stored.startswith("$argon2id$v=19$m=8,t=1,p=1$")
    assert hasher.verify(stored, GOOD)
    assert not hasher.verify(stored, GOOD + "!")


def test_needs_rehash_when_the_policy_changes(hasher: Hasher) -> None:
    stored = hasher.hash(GOOD)
    assert not hasher.needs_rehash(stored)
    assert Hasher(Argon2Params(time_cost=2, memory_kib=8, parallelism=1)).needs_rehash(stored)


def test_a_damaged_stored_hash_is_a_journal_problem(hasher: Hasher) -> None:
    with pytest.raises(JournalError, match="cellauto verify"):
        hasher.verify("$argon2id$v=19$m=8,t=1,p=1$garbage", GOOD)


def test_dummy_verify_checks_nothing_and_raises_nothing(hasher: Hasher) -> None:
    hasher.dummy_verify(GOOD)
    hasher.dummy_verify("")


def test_commitment_is_the_sha256_of_the_argon2_string() -> None:
    assert commitment("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


@pytest.mark.parametrize(
    ("password", "cause"),
    [
        ("short", "too_short"),
        ("x" * 129, "too_long"),
        ("my name is Alice ok", "contains_name"),
        ("MARTINEZ is here 1", "contains_name"),
        ("oh my ALICE again", "contains_name"),
        ("zzzzzzzzzzzzzzzz", "repeated_character"),
        (GOOD, None),
        ("an at-ok password by al", None),  # words shorter than 3 letters are not looked for
    ],
)
def test_new_password_rules(hasher: Hasher, password: str, cause: str | None) -> None:
    assert check_new_password(POLICY, "alice", "Al Martinez", password, [], hasher) == cause


def test_history_counts_only_the_policy_number(hasher: Hasher) -> None:
    old = [hasher.hash(f"old password {n}") for n in range(7)]
    assert check_new_password(POLICY, "bob", "Bob Lee", "old password 4", old, hasher) == (
        "in_history"
    )
    assert check_new_password(POLICY, "bob", "Bob Lee", "old password 5", old, hasher) is None


def test_refusal_messages_never_carry_the_password() -> None:
    for cause in get_args(PasswordCause):
        assert GOOD not in describe_cause(cause, POLICY)


@pytest.mark.parametrize(
    ("password", "cause"),
    [("short one", "too_short"), ("Alice is the best", "contains_name"), (None, "in_history")],
)
def test_policy_refusals_are_journaled_without_the_password(
    site: Site, password: str | None, cause: str
) -> None:
    new = own_password("alice") if password is None else password
    before = site.head()
    with pytest.raises(PasswordPolicyError):
        change_password(site.store, site.sign_in("alice"), new)
    (refusal,) = site.new_records(before)
    assert isinstance(refusal, PasswordChangeRefused)
    assert (refusal.by, refusal.name, refusal.cause) == ("alice", "alice", cause)
    assert new not in refusal.model_dump_json()


def test_history_keeps_the_policy_number_of_passwords(site: Site) -> None:
    for n in range(6):
        change_password(
            site.store,
            site.sign_in("alice", None if n == 0 else f"phrase number {n - 1}!"),
            f"phrase number {n}!",
        )
    with site.store.reading() as conn:
        kept = conn.execute("SELECT count(*) FROM credentials WHERE name = 'alice'").fetchone()
    assert kept == (5,)
    # the oldest of the six is out of the history: allowed again
    change_password(site.store, site.sign_in("alice", "phrase number 5!"), "phrase number 0!")


def test_reset_by_an_administrator_must_be_changed(site: Site) -> None:
    reset_password(site.store, site.root(), "alice", "temporary secret 42", reason="forgot it")
    with pytest.raises(PasswordExpiredError):
        site.sign_in("alice", "temporary secret 42")
    who = site.sign_in("alice", "temporary secret 42", password_change=True)
    change_password(site.store, who, "her new secret phrase")
    assert site.sign_in("alice", "her new secret phrase").account.must_change is False


def test_own_change_refused_when_locked_since_sign_in(site: Site) -> None:
    from cellauto.errors import PeopleError
    from cellauto.records.site_payloads import AccountChangeRefused
    from cellauto.site.accounts import change_status

    who = site.sign_in("alice", password_change=True)
    change_status(site.store, site.root(), "alice", "locked", reason="investigation")
    before = site.head()
    with pytest.raises(PeopleError, match="is locked"):
        change_password(site.store, who, "a fine new phrase")
    (refusal,) = site.new_records(before)
    assert isinstance(refusal, AccountChangeRefused) and refusal.cause == "locked"
