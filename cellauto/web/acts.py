"""Signed acts from the web: the password again, then the act, on the act lane.

Every electronic signature asks for the password in the form that makes it; the first
signing of a web session asks for the user name too, and it must be the session's own
person (Part 11 §11.200(a)(1)(i): signing in signs nothing). The password is checked by
the site's :func:`~cellauto.site.auth.authenticate` (a wrong one is journaled and counts
towards the lock; the lock ends the web session) and the act then runs as that person,
its signature carrying the web session's id, in the same worker thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from cellauto.errors import AccountDisabledError, AccountLockedError, AuthenticationError
from cellauto.records.site_store import SiteStore
from cellauto.site.auth import Authenticated, authenticate, close_session
from cellauto.web.context import Ctx
from cellauto.web.guard import account_problem

__all__ = ["SignFormError", "signed_act"]

T = TypeVar("T")


class SignFormError(AuthenticationError):
    """The sign form was not filled in as a signature needs (no password, another name)."""


async def signed_act(ctx: Ctx, purpose: str, act: Callable[[SiteStore, Authenticated], T]) -> T:
    """Check the form's password (and name, at the first signing) for ``purpose``, then
    run ``act(store, who)`` as the session's person. Raises the site's own errors: a
    wrong password (:class:`AuthenticationError`), a locked account (the web session is
    closed too), or whatever the act refuses."""
    web = ctx.me
    password = ctx.form.get("password", "")
    if not password:
        raise SignFormError("a signature needs your password")
    first = not web.signed_once
    if first and ctx.form.get("signer", "").strip() != web.account:
        raise SignFormError(
            f"the first signature of this session needs your user name ({web.account}): "
            "sign as yourself"
        )
    terminal = ctx.terminal

    def run(store: SiteStore) -> T:
        who = authenticate(
            store,
            web.account,
            password,
            purpose=f"web: {purpose}",
            terminal=terminal,
            session=None if first else web.session,
        )
        return act(store, who._replace(session_id=web.session.id))

    def end_if_locked(store: SiteStore) -> None:
        if account_problem(store, web.account) is not None and ctx.app.sessions.drop_session(web):
            close_session(store, web.session, "lock", terminal)

    try:
        result = await ctx.write(run)
    except (AuthenticationError, AccountLockedError, AccountDisabledError):
        await ctx.write(end_if_locked)  # the failure that locked the account ends the session
        raise
    web.signed_once = True
    return result
