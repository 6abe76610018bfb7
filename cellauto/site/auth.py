"""Signing a person in: user name and password against the confirmed account (§2.5).

The password is checked outside the write lock (argon2 costs ~0.1 s at the site
policy; holding the lock that long would stall every controller's commit); the outcome
is then written under the lock, after re-reading the account. An unknown user name
costs the same as a wrong password and gets the same message. Consecutive failures
reaching the policy's ``max_failures`` lock the account in the same transaction as the
failure that reached it (``by="system"``). A successful sign-in writes nothing by
itself: the act that follows is a record of the person, which ends their failures.
"""

from __future__ import annotations

import secrets
from typing import Literal, NamedTuple

from cellauto.errors import (
    AccountDisabledError,
    AccountLockedError,
    AuthenticationError,
    JournalError,
    PasswordExpiredError,
    PeopleError,
)
from cellauto.records.backend import Conn
from cellauto.records.refs import SiteRef
from cellauto.records.site_payloads import (
    AccountChanged,
    PasswordChanged,
    SessionClosed,
    SessionOpened,
    SignInFailed,
    SitePolicy,
    Terminal,
)
from cellauto.records.site_store import SiteStore, SiteTx
from cellauto.site.passwords import Hasher, commitment
from cellauto.site.policy import current_policy
from cellauto.site.projection import Account, password_expiry, write_credential
from cellauto.site.replay import confirm_account
from cellauto.site.sessions import Session

__all__ = [
    "WRONG",
    "Authenticated",
    "Components",
    "account_refusal",
    "authenticate",
    "close_session",
    "new_session_id",
    "open_session",
]

Components = Literal["user_id+password", "password"]
WRONG = "user name or password is wrong"
_RETRIES = 5

SignInCause = Literal[
    "wrong_password", "unknown_user", "locked", "disabled", "password_expired", "must_change"
]


class Authenticated(NamedTuple):
    """A person who gave their user name and password just now."""

    account: Account
    session_id: str
    components: Components
    terminal: Terminal


def new_session_id() -> str:
    return secrets.token_hex(8)


def account_refusal(
    account: Account, now_ns: int, *, password_change: bool = False
) -> SignInCause | None:
    """Why ``account`` may not act now (status, expired or admin-set password)."""
    if account.status == "disabled":
        return "disabled"
    if account.status != "active":
        return "locked"
    if password_change:
        return None
    if account.must_change:
        return "must_change"
    if account.password_expires_ns is not None and now_ns >= account.password_expires_ns:
        return "password_expired"
    return None


def _error(cause: SignInCause, name: str) -> PeopleError:
    if cause in ("wrong_password", "unknown_user"):
        return AuthenticationError(WRONG)
    if cause == "locked":
        return AccountLockedError(
            f"account {name!r} is locked; an administrator unlocks it with "
            f"`cellauto users unlock {name} --as ADMIN --reason TEXT`"
        )
    if cause == "disabled":
        return AccountDisabledError(f"account {name!r} is disabled; it cannot sign in again")
    what = "expired" if cause == "password_expired" else "was set by an administrator"
    return PasswordExpiredError(
        f"the password of {name!r} {what}; set a new one first with `cellauto users passwd {name}`"
    )


def _read(conn: Conn, name: str) -> Account | None:
    row = conn.execute(
        "SELECT name, full_name, roles, status, failures, password_seq, password_expires_ns,"
        " must_change, source_seq, source_hash FROM accounts WHERE name = ?",
        (name,),
    ).fetchone()
    return None if row is None else Account.from_row(row)


def _rehash(
    tx: SiteTx, account: Account, argon2: str, policy: SitePolicy, terminal: Terminal
) -> None:
    """The same password hashed at the policy's parameters (``password_changed``
    ``change="rehash"``, same expiry and must-change as before)."""
    ref = tx.append(
        PasswordChanged(
            by="system",
            reason="password hash brought to the site policy's argon2 parameters",
            terminal=terminal,
            name=account.name,
            commitment=commitment(argon2),
            must_change=account.must_change,
            expires_on=password_expiry(tx.conn, account),
            change="rehash",
        )
    )
    write_credential(tx.conn, account.name, ref.seq, argon2, keep=policy.password_history)


def authenticate(
    store: SiteStore,
    name: str,
    password: str,
    *,
    purpose: str,
    terminal: Terminal,
    session: Session | None = None,
    password_change: bool = False,
) -> Authenticated:
    """Sign ``name`` in with ``password`` for ``purpose`` (``users lock bob``).

    ``session``: the console's session, if any: its own person signs with the password
    only (§11.200(a)(1)(i)); anyone else, or after the idle timeout, with both.
    ``password_change``: the sign-in is for changing one's own password, so an expired
    or administrator-set password is accepted. Every refusal is journaled, then raised.
    """
    for _attempt in range(_RETRIES):
        with store.reading() as conn:
            policy, _ = current_policy(conn)
            confirmed = confirm_account(conn, name)
        hasher = Hasher(policy.argon2)
        rehashed: str | None = None
        if confirmed is None:
            hasher.dummy_verify(password)
            right = False
        else:
            right = hasher.verify(confirmed[1], password)
            if right and hasher.needs_rehash(confirmed[1]):  # the policy's cost changed
                rehashed = hasher.hash(password)
        account = None if confirmed is None else confirmed[0]
        outcome = _settle(
            store, name, account, right, policy, purpose, terminal, password_change, rehashed
        )
        if outcome is None:
            continue  # the account changed while the password was checked: again
        if isinstance(outcome, PeopleError):
            raise outcome
        components: Components = (
            session.sign_components(name) if session is not None else "user_id+password"
        )
        session_id = session.id if session is not None else new_session_id()
        return Authenticated(outcome, session_id, components, terminal)
    raise JournalError(
        f"account {name!r} kept changing while signing in ({_RETRIES} times); try again"
    )


def _settle(
    store: SiteStore,
    name: str,
    seen: Account | None,
    right: bool,
    policy: SitePolicy,
    purpose: str,
    terminal: Terminal,
    password_change: bool,
    rehashed: str | None,
) -> Account | PeopleError | None:
    """Under the write lock: the account if the sign-in stands, else the journaled
    refusal; None when the row moved since it was read (read and check again)."""
    result: Account | PeopleError
    with store.transaction() as tx:
        account = _read(tx.conn, name)
        if (account is None) != (seen is None) or (
            account is not None and seen is not None and account.source_seq != seen.source_seq
        ):
            return None
        cause: SignInCause | None
        if account is None:
            cause = "unknown_user"
        else:
            cause = account_refusal(account, tx.wall_time_ns, password_change=password_change)
            if cause is None and not right:
                cause = "wrong_password"
        if cause is not None or account is None:
            cause = cause or "unknown_user"
            counted = cause == "wrong_password" and account is not None
            consecutive = account.failures + 1 if counted and account is not None else 0
            tx.append(
                SignInFailed(
                    by=name[:64],
                    terminal=terminal,
                    name_given=name[:64],
                    account_exists=account is not None,
                    cause=cause,
                    consecutive=consecutive,
                    purpose=purpose,
                )
            )
            if counted and consecutive >= policy.max_failures:
                tx.append(
                    AccountChanged(
                        by="system",
                        reason=f"{consecutive} consecutive failed sign-ins",
                        terminal=terminal,
                        name=name,
                        field="status",
                        old="active",
                        new="locked",
                    )
                )
            result = _error(cause, name)
        else:
            result = account
            if rehashed is not None:
                _rehash(tx, account, rehashed, policy, terminal)
    return result


def open_session(store: SiteStore, who: Authenticated, *, purpose: str) -> Session:
    """An attended session of ``who`` in this process (``session_opened``): until it is
    closed or idle, its person signs with the password only."""
    with store.transaction() as tx:
        policy, _ = current_policy(tx.conn)
        tx.append(
            SessionOpened(
                by=who.account.name,
                terminal=who.terminal,
                session_id=who.session_id,
                name=who.account.name,
                purpose=purpose,
            )
        )
        opened_ns = tx.wall_time_ns
    return Session(
        who.account.name,
        opened_wall_ns=opened_ns,
        idle_min=policy.session_idle_min,
        session_id=who.session_id,
    )


def close_session(
    store: SiteStore, session: Session, cause: Literal["exit", "idle", "lock"], terminal: Terminal
) -> SiteRef:
    """End ``session`` (``session_closed``); an idle one is recorded as idle."""
    session.close(cause)
    closed = session.closed or cause
    with store.transaction() as tx:
        return tx.append(
            SessionClosed(
                by=session.account,
                terminal=terminal,
                session_id=session.id,
                name=session.account,
                cause=closed,
            )
        )
