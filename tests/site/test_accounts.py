"""Accounts: bootstrap, adding, status, roles; segregation of duties (abuse cases 5, 15, 17)."""

from __future__ import annotations

import pytest

from cellauto.errors import (
    AccountDisabledError,
    BadInputError,
    PasswordExpiredError,
    PasswordPolicyError,
    PeopleError,
    PermissionRefusedError,
)
from cellauto.records.site_chain import read_site_records
from cellauto.records.site_payloads import (
    AccountChanged,
    AccountChangeRefused,
    AccountCreated,
    PasswordChangeRefused,
    PolicySet,
    SignInFailed,
)
from cellauto.records.site_store import SiteStore
from cellauto.site.accounts import (
    add_account,
    bootstrap,
    change_roles,
    change_status,
    check_account_name,
)
from cellauto.site.password_changes import reset_password
from cellauto.site.replay import confirm_account, replay_problem

from .chain import POLICY, TERMINAL
from .conftest import INITIAL, ROOT_PASSWORD, Site


def test_bootstrap_writes_the_policy_and_the_first_administrator(store: SiteStore) -> None:
    bootstrap(store, "root", "Rita Admin", ROOT_PASSWORD, policy=POLICY, terminal=TERMINAL)
    site = Site(store)
    policy_set, created = site.records()
    assert isinstance(policy_set, PolicySet) and policy_set.new == POLICY
    assert isinstance(created, AccountCreated)
    assert (created.by, created.bootstrap, created.must_change) == ("bootstrap", True, False)
    assert created.roles == ["administrator"]
    assert ROOT_PASSWORD not in str(site.records())
    assert site.root().account.name == "root"


def test_bootstrap_only_once(site: Site) -> None:
    before = site.head()
    with pytest.raises(PermissionRefusedError, match="accounts already"):
        bootstrap(
            site.store,
            "eve",
            "Eve Intruder",
            "another admin secret",
            policy=POLICY,
            terminal=TERMINAL,
        )
    (refusal,) = site.new_records(before)
    assert isinstance(refusal, AccountChangeRefused)
    assert (refusal.by, refusal.cause, refusal.name) == ("bootstrap", "accounts_exist", "eve")
    with site.store.reading() as conn:
        assert confirm_account(conn, "eve") is None


def test_an_added_account_must_change_its_password(site: Site) -> None:
    site.add("dave", "operator", settle=False)
    before = site.head()
    with pytest.raises(PasswordExpiredError, match="users passwd dave"):
        site.sign_in("dave", INITIAL)
    (failed,) = site.new_records(before)
    assert isinstance(failed, SignInFailed) and failed.cause == "must_change"


@pytest.mark.parametrize("name", ["sim:operator-a", "System", "x", "system", "a b", "bootstrap"])
def test_account_names(name: str) -> None:
    with pytest.raises(BadInputError, match="not allowed"):
        check_account_name(name)


def test_only_an_administrator_adds_accounts(site: Site) -> None:
    before = site.head()
    with pytest.raises(PermissionRefusedError, match=r"it needs users\.manage"):
        add_account(
            site.store, site.sign_in("carol"), "dave", "Dave", ["operator"], INITIAL, reason="x"
        )
    (refusal,) = site.new_records(before)
    assert isinstance(refusal, AccountChangeRefused)
    assert (refusal.by, refusal.cause) == ("carol", "permission")


def test_disabled_name_is_never_reused(site: Site) -> None:
    change_status(site.store, site.root(), "alice", "disabled", reason="left the company")
    before = site.head()
    with pytest.raises(AccountDisabledError):
        site.sign_in("alice")
    (failed,) = site.new_records(before)
    assert isinstance(failed, SignInFailed) and failed.cause == "disabled"
    with pytest.raises(PeopleError, match="names are never reused"):
        add_account(site.store, site.root(), "alice", "Alice Two", ["qa"], INITIAL, reason="hire")
    with pytest.raises(PeopleError, match="is disabled"):
        change_status(site.store, site.root(), "alice", "active", reason="back")
    causes = [r.cause for r in site.new_records(before) if isinstance(r, AccountChangeRefused)]
    assert causes == ["name_taken", "disabled"]


@pytest.mark.parametrize(
    ("act", "cause"),
    [
        ("admin grants itself qa", "self"),
        ("admin grants qa to another admin", "exclusive_role"),
        ("admin role to an operator", "exclusive_role"),
        ("admin unlocks itself", "self"),
        ("admin disables itself", "self"),
        ("admin resets own password", "self"),
        ("supervisor grants a role", "permission"),
        ("qa locks an account", "permission"),
    ],
)
def test_segregation_of_duties(site: Site, act: str, cause: str) -> None:
    add_account(site.store, site.root(), "ada", "Ada Admin", ["administrator"], INITIAL, reason="x")
    root = site.root()
    before = site.head()
    with pytest.raises(PermissionRefusedError):
        if act == "admin grants itself qa":
            change_roles(site.store, root, "root", "qa", grant=True, reason="x")
        elif act == "admin grants qa to another admin":
            change_roles(site.store, root, "ada", "qa", grant=True, reason="x")
        elif act == "admin role to an operator":
            change_roles(site.store, root, "alice", "administrator", grant=True, reason="x")
        elif act == "admin unlocks itself":
            change_status(site.store, root, "root", "active", reason="x")
        elif act == "admin disables itself":
            change_status(site.store, root, "root", "disabled", reason="x")
        elif act == "admin resets own password":
            reset_password(site.store, root, "root", "a brand new secret", reason="x")
        elif act == "supervisor grants a role":
            change_roles(site.store, site.sign_in("carol"), "alice", "qa", grant=True, reason="x")
        else:
            change_status(site.store, site.sign_in("bob"), "alice", "locked", reason="x")
    (refusal,) = site.new_records(before)
    assert isinstance(refusal, AccountChangeRefused)
    assert refusal.cause == cause
    assert refusal.reason == "x"


def test_lock_unlock_and_roles(site: Site) -> None:
    root = site.root()
    change_status(site.store, root, "alice", "locked", reason="on leave")
    change_status(site.store, root, "alice", "active", reason="back")
    change_roles(site.store, root, "alice", "supervisor", grant=True, reason="promoted")
    change_roles(site.store, root, "alice", "operator", grant=False, reason="promoted")
    with pytest.raises(PeopleError, match="would hold no role"):
        change_roles(site.store, root, "alice", "supervisor", grant=False, reason="x")
    change_status(site.store, root, "bob", "locked", reason="x")
    with pytest.raises(PeopleError, match="locked already"):
        change_status(site.store, root, "bob", "locked", reason="x")
    changes = [(r.field, r.new) for r in site.records() if isinstance(r, AccountChanged)]
    assert changes == [
        ("status", "locked"),
        ("status", "active"),
        ("roles", ["operator", "supervisor"]),
        ("roles", ["supervisor"]),
        ("status", "locked"),
    ]
    with site.store.reading() as conn:
        assert replay_problem(conn, list(read_site_records(conn))) is None


def test_refused_password_is_journaled_without_it(site: Site) -> None:
    before = site.head()
    with pytest.raises(PasswordPolicyError, match="shorter than 12"):
        add_account(site.store, site.root(), "dave", "Dave Lee", ["operator"], "short", reason="x")
    (refusal,) = site.new_records(before)
    assert isinstance(refusal, PasswordChangeRefused)
    assert (refusal.name, refusal.cause) == ("dave", "too_short")
    assert 'short"' not in refusal.model_dump_json().replace('"too_short"', "")
