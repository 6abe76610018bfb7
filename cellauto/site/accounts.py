"""Accounts: the first administrator, adding people, status and roles.

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
from collections.abc import Sequence
from typing import Literal

from cellauto.errors import BadInputError, PasswordPolicyError, PeopleError, PermissionRefusedError
from cellauto.records.refs import SiteRef
from cellauto.records.site_payloads import (
    AccountChanged,
    AccountChangeRefused,
    AccountCreated,
    PolicySet,
    SitePolicy,
    Terminal,
)
from cellauto.records.site_store import SiteStore, SiteTx
from cellauto.site._acts import (
    Refused,
    acting,
    active_administrators,
    expires_on,
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
    describe_cause,
)
from cellauto.site.policy import current_policy, zone_of
from cellauto.site.roles import EXCLUSIVE_ROLES, Permission, Role

__all__ = [
    "NAME_PATTERN",
    "add_account",
    "bootstrap",
    "change_roles",
    "change_status",
    "check_account_name",
    "check_roles",
    "set_site_policy",
]

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9._-]{1,31}$")
"""Account names: lower case, 2-32 characters; never ``:`` (``sim:`` names are reserved
for simulated operators) and never ``system`` or ``bootstrap``."""
_RESERVED = frozenset({"system", "bootstrap", "site"})
Status = Literal["active", "locked", "disabled"]


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
                    password_expires_on=expires_on(policy, tx.wall_time_ns),
                    bootstrap=True,
                )
            )
            store_credential(tx, name, ref, argon2, policy)
    if taken is not None:
        raise PermissionRefusedError(
            "the journal has accounts already: the first administrator exists; an "
            "administrator adds accounts with `cellauto users add NAME --role ROLE --as ADMIN`"
        )
    return ref


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
        acting(tx, who, name, change, reason)
        if cause is not None:
            raise password_refusal(who, name, cause, policy, reason)
        row = tx.conn.execute("SELECT status FROM accounts WHERE name = ?", (name,)).fetchone()
        if row is not None:
            why = (
                "a disabled account had it; names are never reused"
                if row[0] == "disabled"
                else "it exists"
            )
            raise Refused(
                refusal(who, name, change, "name_taken", row[0], reason),
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
                password_expires_on=expires_on(policy, tx.wall_time_ns),
            )
        )
        store_credential(tx, name, ref, argon2, policy)
        return ref

    return run_act(store, body)


# -- changing ---------------------------------------------------------------------------
def change_status(
    store: SiteStore, who: Authenticated, name: str, new: Status, *, reason: str
) -> SiteRef:
    """Lock (``locked``), unlock (``active``: also ends the failures) or disable."""
    change = {"locked": "lock", "active": "unlock", "disabled": "disable"}[new]

    def body(tx: SiteTx) -> SiteRef:
        acting(tx, who, name, change, reason)
        target = target_of(tx, who, name, change, reason)
        if target.status == new:
            raise Refused(
                refusal(who, name, change, "no_change", target.status, reason),
                PeopleError(f"account {name!r} is {new} already"),
            )
        if new != "active" and active_administrators(tx.conn) == {name}:
            raise Refused(
                refusal(who, name, change, "last_administrator", "", reason),
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

    return run_act(store, body)


def change_roles(
    store: SiteStore, who: Authenticated, name: str, role: str, *, grant: bool, reason: str
) -> SiteRef:
    """Grant or revoke one role."""
    check_roles([role])
    change = f"{'grant' if grant else 'revoke'} {role}"

    def body(tx: SiteTx) -> SiteRef:
        acting(tx, who, name, change, reason)
        target = target_of(tx, who, name, change, reason)
        old = list(target.roles)
        new = [*old, role] if grant else [r for r in old if r != role]
        if (role in old) == grant:
            raise Refused(
                refusal(who, name, change, "no_change", ",".join(old), reason),
                PeopleError(f"account {name!r} {'has' if grant else 'does not have'} role {role}"),
            )
        if grant and len(new) > 1 and EXCLUSIVE_ROLES & {Role(r) for r in new}:
            raise Refused(
                refusal(who, name, change, "exclusive_role", ",".join(old), reason),
                PermissionRefusedError(
                    f"{name} would hold {', '.join(new)}: an administrator holds no other role"
                    " (segregation of duties)"
                ),
            )
        if not new:
            raise Refused(
                refusal(who, name, change, "no_role_left", ",".join(old), reason),
                PeopleError(f"{name} would hold no role; disable the account instead"),
            )
        if not grant and role == Role.ADMINISTRATOR and active_administrators(tx.conn) == {name}:
            raise Refused(
                refusal(who, name, change, "last_administrator", "", reason),
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

    return run_act(store, body)


def set_site_policy(
    store: SiteStore, who: Authenticated, policy: SitePolicy, *, reason: str
) -> SiteRef:
    """An administrator changes the site policy (``policy.set``). Passwords hashed at
    other argon2 parameters are re-hashed at their owner's next sign-in."""
    zone_of(policy)
    change = "set site policy"

    def body(tx: SiteTx) -> SiteRef:
        acting(tx, who, "site", change, reason, Permission.POLICY_SET)
        old, _ = current_policy(tx.conn)
        return tx.append(
            PolicySet(
                by=who.account.name, reason=reason, terminal=who.terminal, old=old, new=policy
            )
        )

    return run_act(store, body)
