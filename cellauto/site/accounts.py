"""Accounts: the first administrator, adding people, status, roles and passwords.

Every change is a site record written in one transaction with what it changes (the
``accounts`` projection, the ``credentials`` row of a new password). The rules
(segregation of duties, EU GMP Annex 11 §12; 21 CFR 11.10(g)) are checked under the
write lock against the confirmed rows: an administrator holds no other role; nobody
changes their own roles or status or resets their own password; at least one active
administrator remains; a disabled account stays disabled and its name is never given
to anyone else. A refusal of an identified person is journaled
(``account_change_refused``, ``password_change_refused``), then raised.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from typing import Literal

import orjson

from cellauto.errors import BadInputError, PasswordPolicyError, PeopleError, PermissionRefusedError
from cellauto.records.refs import SiteRef
from cellauto.records.site_payloads import (
    AccountChanged,
    AccountChangeRefused,
    AccountCreated,
    PasswordChanged,
    PasswordChangeRefused,
    PolicySet,
    SitePayload,
    SitePolicy,
    Terminal,
)
from cellauto.records.site_store import SiteStore, SiteTx
from cellauto.site.auth import Authenticated, account_refusal
from cellauto.site.passwords import (
    Hasher,
    PasswordCause,
    check_new_password,
    commitment,
    describe_cause,
)
from cellauto.site.policy import current_policy, site_date, zone_of
from cellauto.site.projection import Account, confirm_account, write_credential
from cellauto.site.roles import EXCLUSIVE_ROLES, Permission, Role, permissions_of

__all__ = [
    "NAME_PATTERN",
    "add_account",
    "bootstrap",
    "change_password",
    "change_roles",
    "change_status",
    "check_account_name",
    "check_roles",
    "reset_password",
    "set_site_policy",
]

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9._-]{1,31}$")
"""Account names: lower case, 2-32 characters; never ``:`` (``sim:`` names are reserved
for simulated operators) and never ``system`` or ``bootstrap``."""
_RESERVED = frozenset({"system", "bootstrap", "site"})
Status = Literal["active", "locked", "disabled"]


class _Refused(Exception):
    """Inside a transaction: the refusal to journal once the block is left."""

    def __init__(self, record: SitePayload, error: PeopleError) -> None:
        super().__init__(str(error))
        self.record = record
        self.error = error


def check_account_name(name: str) -> None:
    if not NAME_PATTERN.match(name) or name in _RESERVED:
        raise BadInputError(
            f"account name {name!r} is not allowed: 2-32 characters of a-z, 0-9, '.', '_', '-',"
            " starting with a letter (not 'system', 'bootstrap' or 'site')"
        )


def check_roles(roles: Sequence[str]) -> list[str]:
    """The roles as given, checked: known, no repeats, at least one, administrator alone."""
    known = {role.value for role in Role}
    unknown = [role for role in roles if role not in known]
    if unknown or not roles or len(set(roles)) != len(roles):
        raise BadInputError(
            f"roles {list(roles)} are not allowed: give each of {sorted(known)} at most once"
        )
    if len(roles) > 1 and EXCLUSIVE_ROLES & {Role(role) for role in roles}:
        raise BadInputError("an administrator holds no other role (segregation of duties)")
    return list(roles)


def _expires_on(policy: SitePolicy, now_ns: int) -> date | None:
    if policy.password_expiry_days is None:
        return None
    return site_date(policy, now_ns) + timedelta(days=policy.password_expiry_days)


def _history(conn: sqlite3.Connection, name: str) -> list[str]:
    rows = conn.execute(
        "SELECT argon2 FROM credentials WHERE name = ? ORDER BY set_seq DESC", (name,)
    )
    return [argon2 for (argon2,) in rows]


def _store_credential(tx: SiteTx, name: str, ref: SiteRef, argon2: str, policy: SitePolicy) -> None:
    write_credential(tx.conn, name, ref.seq, argon2, keep=policy.password_history)


def _active_administrators(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute("SELECT name, roles FROM accounts WHERE status = 'active'")
    return {name for name, roles in rows if Role.ADMINISTRATOR in orjson.loads(roles)}


def _run(store: SiteStore, body: Callable[[SiteTx], SiteRef]) -> SiteRef:
    """Run ``body(tx)`` in a transaction; a :class:`_Refused` it raises is journaled
    in its own transaction (the act's own writes roll back), then its error raised."""
    try:
        with store.transaction() as tx:
            return body(tx)
    except _Refused as refused:
        with store.transaction() as tx:
            tx.append(refused.record)
        raise refused.error from None


def _actor(
    tx: SiteTx,
    who: Authenticated,
    name: str,
    change: str,
    reason: str,
    permission: Permission = Permission.USERS_MANAGE,
) -> Account:
    """The acting administrator, re-confirmed under the lock, or a refusal."""
    confirmed = confirm_account(tx.conn, who.account.name)
    cause: str | None = (
        "unknown_account" if confirmed is None else account_refusal(confirmed[0], tx.wall_time_ns)
    )
    if confirmed is not None and cause is None:
        if permission in permissions_of(confirmed[0].roles):
            return confirmed[0]
        cause = "permission"
    raise _Refused(
        _refusal(who, name, change, str(cause), "", reason),
        PermissionRefusedError(
            f"{who.account.name} may not {change} {name}: "
            + (
                f"it needs {permission.value} (an administrator)"
                if cause == "permission"
                else f"their own account is {cause}"
            )
        ),
    )


def _refusal(
    who: Authenticated, name: str, change: str, cause: str, detail: str, reason: str = ""
) -> AccountChangeRefused:
    return AccountChangeRefused(
        by=who.account.name,
        reason=reason,
        terminal=who.terminal,
        name=name,
        change=change,
        cause=cause,
        detail=detail,
    )


def _target(tx: SiteTx, who: Authenticated, name: str, change: str, reason: str) -> Account:
    """The account acted on: it exists, is not the actor, is not disabled."""
    if name == who.account.name:
        raise _Refused(
            _refusal(who, name, change, "self", "", reason),
            PermissionRefusedError(
                f"{name} may not {change} their own account; another administrator must"
            ),
        )
    confirmed = confirm_account(tx.conn, name)
    if confirmed is None:
        raise _Refused(
            _refusal(who, name, change, "unknown_account", "", reason),
            PeopleError(f"no account {name!r}; `cellauto users list` shows the accounts"),
        )
    if confirmed[0].status == "disabled":
        raise _Refused(
            _refusal(who, name, change, "disabled", "", reason),
            PeopleError(f"account {name!r} is disabled; a disabled account is never changed"),
        )
    return confirmed[0]


# -- creating ---------------------------------------------------------------------------
def bootstrap(
    store: SiteStore,
    name: str,
    full_name: str,
    password: str,
    *,
    policy: SitePolicy,
    terminal: Terminal,
    reason: str = "",
) -> SiteRef:
    """The first administrator of a journal with no accounts, and the site policy.

    Its password is not ``must_change`` (nobody else knew it). Refused, and journaled,
    when the journal has any account already (checked under the write lock, so two
    bootstraps cannot both win)."""
    check_account_name(name)
    hasher = Hasher(policy.argon2)
    cause = check_new_password(policy, name, full_name, password, [], hasher)
    if cause is not None:
        raise PasswordPolicyError(describe_cause(cause, policy))
    argon2 = hasher.hash(password)
    with store.transaction() as tx:
        taken = tx.conn.execute(
            "SELECT 1 FROM site_records WHERE kind = 'account_created' LIMIT 1"
        ).fetchone()
        if taken is not None:
            tx.append(
                AccountChangeRefused(
                    by="bootstrap",
                    reason=reason,
                    terminal=terminal,
                    name=name,
                    change="add administrator (first account)",
                    cause="accounts_exist",
                )
            )
        else:
            tx.append(
                PolicySet(by="bootstrap", reason=reason, terminal=terminal, old=None, new=policy)
            )
            ref = tx.append(
                AccountCreated(
                    by="bootstrap",
                    reason=reason,
                    terminal=terminal,
                    name=name,
                    full_name=full_name,
                    roles=[Role.ADMINISTRATOR.value],
                    password_commitment=commitment(argon2),
                    must_change=False,
                    password_expires_on=_expires_on(policy, tx.wall_time_ns),
                    bootstrap=True,
                )
            )
            _store_credential(tx, name, ref, argon2, policy)
    if taken is not None:
        raise PermissionRefusedError(
            "the journal has accounts already: the first administrator exists; an "
            "administrator adds accounts with `cellauto users add NAME --role ROLE --as ADMIN`"
        )
    return ref


def _password_refusal(
    who: Authenticated, name: str, cause: PasswordCause, policy: SitePolicy, reason: str = ""
) -> _Refused:
    return _Refused(
        PasswordChangeRefused(
            by=who.account.name, reason=reason, terminal=who.terminal, name=name, cause=cause
        ),
        PasswordPolicyError(f"password for {name!r} refused: {describe_cause(cause, policy)}"),
    )


def add_account(
    store: SiteStore,
    who: Authenticated,
    name: str,
    full_name: str,
    roles: Sequence[str],
    password: str,
    *,
    reason: str,
) -> SiteRef:
    """An administrator adds an account; its initial password must be changed first."""
    check_account_name(name)
    roles = check_roles(roles)
    with store.reading() as conn:
        policy, _ = current_policy(conn)
    hasher = Hasher(policy.argon2)
    cause = check_new_password(policy, name, full_name, password, [], hasher)
    argon2 = hasher.hash(password) if cause is None else ""
    change = f"add {name}"

    def body(tx: SiteTx) -> SiteRef:
        _actor(tx, who, name, change, reason)
        if cause is not None:
            raise _password_refusal(who, name, cause, policy, reason)
        row = tx.conn.execute("SELECT status FROM accounts WHERE name = ?", (name,)).fetchone()
        if row is not None:
            why = (
                "a disabled account had it; names are never reused"
                if row[0] == "disabled"
                else "it exists"
            )
            raise _Refused(
                _refusal(who, name, change, "name_taken", row[0], reason),
                PeopleError(f"account name {name!r} is taken: {why}"),
            )
        ref = tx.append(
            AccountCreated(
                by=who.account.name,
                reason=reason,
                terminal=who.terminal,
                name=name,
                full_name=full_name,
                roles=roles,
                password_commitment=commitment(argon2),
                must_change=True,
                password_expires_on=_expires_on(policy, tx.wall_time_ns),
            )
        )
        _store_credential(tx, name, ref, argon2, policy)
        return ref

    return _run(store, body)


# -- changing ---------------------------------------------------------------------------
def change_status(
    store: SiteStore, who: Authenticated, name: str, new: Status, *, reason: str
) -> SiteRef:
    """Lock (``locked``), unlock (``active``: also ends the failures) or disable."""
    change = {"locked": "lock", "active": "unlock", "disabled": "disable"}[new]

    def body(tx: SiteTx) -> SiteRef:
        _actor(tx, who, name, change, reason)
        target = _target(tx, who, name, change, reason)
        if target.status == new:
            raise _Refused(
                _refusal(who, name, change, "no_change", target.status, reason),
                PeopleError(f"account {name!r} is {new} already"),
            )
        if new != "active" and _active_administrators(tx.conn) == {name}:
            raise _Refused(
                _refusal(who, name, change, "last_administrator", "", reason),
                PermissionRefusedError(f"{name} is the last active administrator"),
            )
        return tx.append(
            AccountChanged(
                by=who.account.name,
                reason=reason,
                terminal=who.terminal,
                name=name,
                field="status",
                old=target.status,
                new=new,
            )
        )

    return _run(store, body)


def change_roles(
    store: SiteStore, who: Authenticated, name: str, role: str, *, grant: bool, reason: str
) -> SiteRef:
    """Grant or revoke one role."""
    check_roles([role])
    change = f"{'grant' if grant else 'revoke'} {role}"

    def body(tx: SiteTx) -> SiteRef:
        _actor(tx, who, name, change, reason)
        target = _target(tx, who, name, change, reason)
        old = list(target.roles)
        new = [*old, role] if grant else [r for r in old if r != role]
        if (role in old) == grant:
            raise _Refused(
                _refusal(who, name, change, "no_change", ",".join(old), reason),
                PeopleError(f"account {name!r} {'has' if grant else 'does not have'} role {role}"),
            )
        if grant and len(new) > 1 and EXCLUSIVE_ROLES & {Role(r) for r in new}:
            raise _Refused(
                _refusal(who, name, change, "exclusive_role", ",".join(old), reason),
                PermissionRefusedError(
                    f"{name} would hold {', '.join(new)}: an administrator holds no other role"
                    " (segregation of duties)"
                ),
            )
        if not new:
            raise _Refused(
                _refusal(who, name, change, "no_role_left", ",".join(old), reason),
                PeopleError(f"{name} would hold no role; disable the account instead"),
            )
        if not grant and role == Role.ADMINISTRATOR and _active_administrators(tx.conn) == {name}:
            raise _Refused(
                _refusal(who, name, change, "last_administrator", "", reason),
                PermissionRefusedError(f"{name} is the last active administrator"),
            )
        return tx.append(
            AccountChanged(
                by=who.account.name,
                reason=reason,
                terminal=who.terminal,
                name=name,
                field="roles",
                old=old,
                new=new,
            )
        )

    return _run(store, body)


def _new_password(
    store: SiteStore, who: Authenticated, name: str, password: str, *, reset: bool, reason: str
) -> SiteRef:
    with store.reading() as conn:
        policy, _ = current_policy(conn)
        confirmed = confirm_account(conn, name)
        history = _history(conn, name)
    hasher = Hasher(policy.argon2)
    full_name = "" if confirmed is None else confirmed[0].full_name
    cause = check_new_password(policy, name, full_name, password, history, hasher)
    argon2 = hasher.hash(password) if cause is None else ""
    change = "reset password" if reset else "set password"

    def body(tx: SiteTx) -> SiteRef:
        if reset:
            _actor(tx, who, name, change, reason)
            _target(tx, who, name, change, reason)
        if cause is not None:
            raise _password_refusal(who, name, cause, policy, reason)
        ref = tx.append(
            PasswordChanged(
                by=who.account.name,
                reason=reason,
                terminal=who.terminal,
                name=name,
                commitment=commitment(argon2),
                must_change=reset,
                expires_on=_expires_on(policy, tx.wall_time_ns),
                change="reset" if reset else "set",
            )
        )
        _store_credential(tx, name, ref, argon2, policy)
        return ref

    return _run(store, body)


def change_password(store: SiteStore, who: Authenticated, password: str) -> SiteRef:
    """A person sets their own new password (``who`` signed in with the old one,
    ``password_change=True``)."""
    return _new_password(store, who, who.account.name, password, reset=False, reason="")


def reset_password(
    store: SiteStore, who: Authenticated, name: str, password: str, *, reason: str
) -> SiteRef:
    """An administrator sets another person's password; it must be changed first."""
    return _new_password(store, who, name, password, reset=True, reason=reason)


def set_site_policy(
    store: SiteStore, who: Authenticated, policy: SitePolicy, *, reason: str
) -> SiteRef:
    """An administrator changes the site policy (``policy.set``). Passwords hashed at
    other argon2 parameters are re-hashed at their owner's next sign-in."""
    zone_of(policy)
    change = "set site policy"

    def body(tx: SiteTx) -> SiteRef:
        _actor(tx, who, "site", change, reason, Permission.POLICY_SET)
        old, _ = current_policy(tx.conn)
        return tx.append(
            PolicySet(
                by=who.account.name, reason=reason, terminal=who.terminal, old=old, new=policy
            )
        )

    return _run(store, body)
