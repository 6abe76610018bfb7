"""Passwords of accounts: one's own new password, an administrator's reset.

The new password is checked against the site policy and the account's history before
the write lock is taken (argon2 is slow); a refusal is journaled
(``password_change_refused``, never the password) and raised.
"""

from __future__ import annotations

from cellauto.errors import PeopleError
from cellauto.records.refs import SiteRef
from cellauto.records.site_payloads import (
    PasswordChanged,
)
from cellauto.records.site_store import SiteStore, SiteTx
from cellauto.site._acts import (
    Refused,
    acting,
    expires_on,
    history,
    password_refusal,
    refusal,
    run_act,
    store_credential,
    target_of,
)
from cellauto.site.auth import Authenticated
from cellauto.site.passwords import (
    Hasher,
    check_new_password,
    commitment,
)
from cellauto.site.policy import current_policy
from cellauto.site.replay import confirm_account

__all__ = ["change_password", "reset_password"]


def _new_password(
    store: SiteStore, who: Authenticated, name: str, password: str, *, reset: bool, reason: str
) -> SiteRef:
    with store.reading() as conn:
        policy, _ = current_policy(conn)
        confirmed = confirm_account(conn, name)
        previous = history(conn, name)
    hasher = Hasher(policy.argon2)
    full_name = "" if confirmed is None else confirmed[0].full_name
    cause = check_new_password(policy, name, full_name, password, previous, hasher)
    argon2 = hasher.hash(password) if cause is None else ""
    change = "reset password" if reset else "set password"

    def body(tx: SiteTx) -> SiteRef:
        if reset:
            acting(tx, who, name, change, reason)
            target_of(tx, who, name, change, reason)
        else:  # locked or disabled since the sign-in a moment ago?
            own = confirm_account(tx.conn, name)
            state = "unknown_account" if own is None else own[0].status
            if state != "active":
                raise Refused(
                    refusal(who, name, change, state, "", reason),
                    PeopleError(f"account {name!r} is {state}; its password cannot be set"),
                )
        if cause is not None:
            raise password_refusal(who, name, cause, policy, reason)
        ref = tx.append(
            PasswordChanged(
                by=who.account.name,
                reason=reason,
                terminal=who.terminal,
                name=name,
                commitment=commitment(argon2),
                must_change=reset,
                expires_on=expires_on(policy, tx.wall_time_ns),
                change="reset" if reset else "set",
            )
        )
        store_credential(tx, name, ref, argon2, policy)
        return ref

    return run_act(store, body)


def change_password(store: SiteStore, who: Authenticated, password: str) -> SiteRef:
    """A person sets their own new password (``who`` signed in with the old one,
    ``password_change=True``)."""
    return _new_password(store, who, who.account.name, password, reset=False, reason="")


def reset_password(
    store: SiteStore, who: Authenticated, name: str, password: str, *, reason: str
) -> SiteRef:
    """An administrator sets another person's password; it must be changed first."""
    return _new_password(store, who, name, password, reset=True, reason=reason)
