"""What the account acts share: the acting administrator and the account acted on,
confirmed under the write lock, and refusals journaled in a transaction of their own."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, timedelta
from typing import TypeVar

import orjson

from cellauto.errors import (
    BadInputError,
    PasswordPolicyError,
    PeopleError,
    PermissionRefusedError,
)
from cellauto.records.backend import Conn
from cellauto.records.refs import SiteRef
from cellauto.records.site_payloads import (
    AccountChangeRefused,
    PasswordChangeRefused,
    SitePayload,
    SitePolicy,
)
from cellauto.records.site_store import SiteStore, SiteTx
from cellauto.site.auth import Authenticated, account_refusal
from cellauto.site.passwords import (
    PasswordCause,
    describe_cause,
)
from cellauto.site.policy import current_policy, site_date
from cellauto.site.projection import Account, write_credential
from cellauto.site.replay import confirm_account
from cellauto.site.roles import Permission, Role, holders, permissions_of

__all__ = [
    "Refused",
    "acting",
    "active_administrators",
    "actor_problem",
    "expires_on",
    "history",
    "password_refusal",
    "refusal",
    "run_act",
    "store_credential",
    "target_of",
    "today",
]


T = TypeVar("T")


class Refused(Exception):
    """Inside a transaction: the refusal (one record, or several: the act's refusal and a
    signature's) to journal once the block is left, and the error to raise then."""

    def __init__(self, records: SitePayload | Sequence[SitePayload], error: BadInputError) -> None:
        super().__init__(str(error))
        self.records = [records] if isinstance(records, SitePayload) else list(records)
        self.error = error


def today(tx: SiteTx) -> date:
    """The site's day (in its time zone) when the transaction began."""
    policy, _ = current_policy(tx.conn)
    return site_date(policy, tx.wall_time_ns)


def expires_on(policy: SitePolicy, now_ns: int) -> date | None:
    if policy.password_expiry_days is None:
        return None
    return site_date(policy, now_ns) + timedelta(days=policy.password_expiry_days)


def history(conn: Conn, name: str) -> list[str]:
    rows = conn.execute(
        "SELECT argon2 FROM credentials WHERE name = ? ORDER BY set_seq DESC", (name,)
    )
    return [argon2 for (argon2,) in rows]


def store_credential(tx: SiteTx, name: str, ref: SiteRef, argon2: str, policy: SitePolicy) -> None:
    write_credential(tx.conn, name, ref.seq, argon2, keep=policy.password_history)


def active_administrators(conn: Conn) -> set[str]:
    rows = conn.execute("SELECT name, roles FROM accounts WHERE status = 'active'")
    return {name for name, roles in rows if Role.ADMINISTRATOR in orjson.loads(roles)}


def run_act(store: SiteStore, body: Callable[[SiteTx], T]) -> T:
    """Run ``body(tx)`` in a transaction; a :class:`Refused` it raises is journaled
    in its own transaction (the act's own writes roll back), then its error raised."""
    try:
        with store.transaction() as tx:
            return body(tx)
    except Refused as refused:
        with store.transaction() as tx:
            for record in refused.records:
                tx.append(record)
        raise refused.error from None


def actor_problem(
    tx: SiteTx, who: Authenticated, permission: Permission, doing: str
) -> tuple[str, str] | None:
    """Why ``who`` may not do ``doing`` now, as (cause, message), or None when they may:
    their account is re-confirmed under the write lock (it exists, is active, its
    password is their own and current) and holds ``permission`` (an administrator never
    acts on a batch, a lot or an instrument)."""
    name = who.account.name
    confirmed = confirm_account(tx.conn, name)
    cause = (
        "unknown_account" if confirmed is None else account_refusal(confirmed[0], tx.wall_time_ns)
    )
    if confirmed is None or cause is not None:
        return str(cause), f"{name} may not act: {cause}"
    roles = confirmed[0].roles
    if Role.ADMINISTRATOR in roles or permission not in permissions_of(roles):
        return (
            "permission",
            f"{name} ({', '.join(roles)}) may not {doing}: it needs {permission.value}"
            f" ({holders(permission)})",
        )
    return None


def acting(
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
    raise Refused(
        refusal(who, name, change, str(cause), "", reason),
        PermissionRefusedError(
            f"{who.account.name} may not {change} {name}: "
            + (
                f"it needs {permission.value} (an administrator)"
                if cause == "permission"
                else f"their own account is {cause}"
            )
        ),
    )


def refusal(
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


def target_of(tx: SiteTx, who: Authenticated, name: str, change: str, reason: str) -> Account:
    """The account acted on: it exists, is not the actor, is not disabled."""
    if name == who.account.name:
        raise Refused(
            refusal(who, name, change, "self", "", reason),
            PermissionRefusedError(
                f"{name} may not {change} their own account; another administrator must"
            ),
        )
    confirmed = confirm_account(tx.conn, name)
    if confirmed is None:
        raise Refused(
            refusal(who, name, change, "unknown_account", "", reason),
            PeopleError(f"no account {name!r}; `cellauto users list` shows the accounts"),
        )
    if confirmed[0].status == "disabled":
        raise Refused(
            refusal(who, name, change, "disabled", "", reason),
            PeopleError(f"account {name!r} is disabled; a disabled account is never changed"),
        )
    return confirmed[0]


def password_refusal(
    who: Authenticated, name: str, cause: PasswordCause, policy: SitePolicy, reason: str = ""
) -> Refused:
    return Refused(
        PasswordChangeRefused(
            by=who.account.name, reason=reason, terminal=who.terminal, name=name, cause=cause
        ),
        PasswordPolicyError(f"password for {name!r} refused: {describe_cause(cause, policy)}"),
    )
