"""Signed acts from the web: the password again, then the act, on the act lane.

Every electronic signature asks for the password in the form that makes it; the first
signing of a web session asks for the user name too, and it must be the session's own
person (Part 11 §11.200(a)(1)(i): signing in signs nothing). The password is checked by
the site's :func:`~cellauto.site.auth.authenticate` (a wrong one is journaled and counts
towards the lock; the lock ends the web session) and the act then runs as that person,
its signature carrying the web session's id, in the same worker thread. A signature
refused before the password is checked (none given; at the first signature, a name not
the session's own) is journaled too (``signature_refused``): an attempt to sign as
someone else is what an auditor wants on record.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from cellauto.errors import AccountDisabledError, AccountLockedError, AuthenticationError
from cellauto.records.site_store import SiteStore
from cellauto.site.auth import Authenticated, authenticate
from cellauto.web.context import Ctx
from cellauto.web.guard import account_problem, journal_refusal
from cellauto.web.session_sweep import close_web_session

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
    terminal = ctx.terminal
    password = ctx.form.get("password", "")
    first = not web.signed_once
    given = ctx.form.get("signer", "").strip()
    problem: tuple[str, str] | None = None
    if not password:
        problem = ("no_password", "a signature needs your password")
    elif first and given != web.account:
        problem = (
            "signer_mismatch",
            f"the first signature of this session needs your user name ({web.account}):"
            " sign as yourself" + (f", not as {given!r}" if given else ""),
        )
    if problem is not None:  # an identified person's refused signature: journaled
        cause, message = problem
        run_id = ctx.request.path_params.get("run_id")
        detail = f"web: {purpose}: {message}"
        await ctx.write(
            lambda store: journal_refusal(
                store, web.account, terminal, cause, detail, run_id=run_id
            )
        )
        raise SignFormError(message)

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

    try:
        result = await ctx.write(run)
    except (AuthenticationError, AccountLockedError, AccountDisabledError):
        # the failure that locked the account ends the session
        if await ctx.write(lambda store: account_problem(store, web.account)) is not None:
            await close_web_session(ctx.app, web, "lock")
        raise
    web.signed_once = True
    return result
