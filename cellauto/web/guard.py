"""The checks every request passes before its handler runs.

* :func:`same_origin`: a state-changing request came from one of this server's pages
  (its ``Origin``, else its ``Referer``, is this server's own).
* :func:`token_matches`: it carries its session's synchronizer token (CSRF).
* :func:`permission_refusal`: the person holds the route's permission, read from the
  site's accounts now (a role revoked during a session counts at the next act). A refusal
  is journaled (``signature_refused``, cause ``permission``) *before* any password is
  asked or checked, so a wrong password on a form one may not use never counts towards
  one's lockout. The act's own function checks again under the write lock.

Refusals of a request with no identified person (no session, a wrong token, another
origin) go to the server log only: journaling them would let anyone grow the site chain.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from starlette.requests import Request

from cellauto.records import Journal
from cellauto.records.refs import Meaning
from cellauto.records.site_payload_base import Terminal
from cellauto.records.site_payloads import SignatureRefused
from cellauto.records.site_store import SiteStore
from cellauto.site.auth import account_refusal
from cellauto.site.replay import confirm_account
from cellauto.site.roles import Permission, Role, holders, permissions_of
from cellauto.web.context import Ctx

__all__ = ["account_gone", "account_problem", "permission_refusal", "same_origin", "token_matches"]


def same_origin(request: Request) -> bool:
    """The request came from a page of this server (Origin, else Referer, must match)."""
    own = f"{request.url.scheme}://{request.url.netloc}"
    origin = request.headers.get("origin")
    if origin is None:
        referer = request.headers.get("referer")
        if referer is None:
            return False
        parts = urlsplit(referer)
        origin = f"{parts.scheme}://{parts.netloc}"
    return origin == own


def token_matches(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison of a form's token with the session's."""
    return given is not None and expected is not None and hmac.compare_digest(given, expected)


def account_problem(store: SiteStore, name: str) -> str | None:
    """Why ``name``'s account may not be used now (locked, disabled, gone), or None."""
    with store.reading() as conn:
        confirmed = confirm_account(conn, name)
    if confirmed is None:
        return "unknown_account"
    return account_refusal(confirmed[0], 0)


def journal_refusal(
    store: SiteStore,
    account: str,
    terminal: Terminal,
    cause: str,
    detail: str,
    *,
    run_id: str | None = None,
    task_id: str | None = None,
    meaning: Meaning | None = None,
) -> None:
    """Journal the refusal of a signature the signed-in person ``account`` asked for
    (``signature_refused``, by and of that person), in a transaction of its own."""
    with store.transaction() as tx:
        tx.append(
            SignatureRefused(
                by=account,
                terminal=terminal,
                name=account,
                meaning=meaning,
                target=None,
                run_id=run_id,
                task_id=task_id,
                cause=cause,
                detail=detail,
            )
        )


def account_gone(journal: Journal, name: str) -> bool:
    """The account ``name`` no longer exists, or is locked or disabled."""
    confirmed = confirm_account(journal.read_connection(), name)
    return confirmed is None or account_refusal(confirmed[0], 0) in ("locked", "disabled")


async def permission_refusal(ctx: Ctx, permission: Permission, doing: str) -> str | None:
    """None when the signed-in person holds ``permission`` now; else the refusal's
    message, after journaling it (``signature_refused``, cause ``permission``)."""
    name = ctx.me.account
    terminal = ctx.terminal
    run_id = ctx.request.path_params.get("run_id")
    where = f"web: {ctx.request.method} {ctx.request.url.path}"

    def check(store: SiteStore) -> str | None:
        with store.reading() as conn:
            confirmed = confirm_account(conn, name)
        roles = () if confirmed is None else tuple(confirmed[0].roles)
        if confirmed is not None and (
            Role.ADMINISTRATOR not in roles and permission in permissions_of(roles)
        ):
            return None
        message = (
            f"{name} ({', '.join(roles) or 'no roles'}) may not {doing}: it needs"
            f" {permission.value} ({holders(permission)})"
        )
        journal_refusal(
            store,
            name,
            terminal,
            "permission",
            f"{where}: {message}",
            run_id=None if run_id is None else str(run_id),
        )
        return message

    return await ctx.write(check)
