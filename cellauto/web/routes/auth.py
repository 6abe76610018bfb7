"""Signing in and out.

Signing in is the site's own :func:`~cellauto.site.auth.authenticate` (lockout, expiry,
every failure journaled) and opens a session journaled with the browser's address; the
browser gets a random token in an ``HttpOnly; SameSite=Strict`` cookie (``__Host-`` and
``Secure`` over HTTPS). The sign-in form carries a pre-session token of its own, kept in
a cookie (double submit), since there is no session yet to hold one.
"""

from __future__ import annotations

import secrets
from typing import Any

from starlette.responses import RedirectResponse, Response

from cellauto.errors import (
    AccountDisabledError,
    AccountLockedError,
    AuthenticationError,
    PasswordExpiredError,
)
from cellauto.records.site_store import SiteStore
from cellauto.site.auth import authenticate, open_session
from cellauto.web.context import Ctx
from cellauto.web.guard import token_matches
from cellauto.web.routes_table import RouteSpec
from cellauto.web.session_sweep import close_web_session
from cellauto.web.sessions import WebSession

__all__ = ["ROUTES"]


REFUSED = (
    "The user name or the password is wrong, or this account may not sign in now (locked,"
    " disabled, or its password must be changed first)."
)


def _cookie_options(ctx: Ctx) -> dict[str, Any]:
    return {"httponly": True, "samesite": "strict", "secure": ctx.app.config.secure, "path": "/"}


async def _form(ctx: Ctx, message: str = "", status: int = 200) -> Response:
    # the browser's own token is kept while it has one: a second tab (or the browser's
    # request for a favicon, sent here) must not void the form already on screen
    pre = ctx.app.cookie(ctx.request, "pre")
    held = ctx.request.cookies.get(pre, "")
    token = held if len(held) == 32 and held.isascii() else secrets.token_urlsafe(24)
    response = await ctx.page(
        "login.html",
        status,
        secure=ctx.app.config.secure,
        csrf_login=token,
        message=message,
    )
    response.set_cookie(pre, token, **_cookie_options(ctx))
    return response


async def login_page(ctx: Ctx) -> Response:
    message = (
        "Your session ended after a time unused; sign in again."
        if "idle" in (ctx.request.query_params)
        else ""
    )
    return await _form(ctx, message)


async def login(ctx: Ctx) -> Response:
    app, pre = ctx.app, ctx.app.cookie(ctx.request, "pre")
    if not token_matches(ctx.form.get("csrf_login"), ctx.request.cookies.get(pre)):
        return await _form(ctx, "The sign-in form expired; sign in again.", 403)
    address, terminal = ctx.address, ctx.terminal
    wait_s = app.throttle.wait_s(address)
    if wait_s > 0:  # nothing checked, nothing journaled: a stranger's flood
        await ctx.refuse(429, f"too many failed sign-ins from {address}")
        message = f"Too many failed sign-ins from this address; try again in {wait_s:.0f} s."
        return await _form(ctx, message, 429)
    earlier = app.sessions.get(ctx.request.cookies.get(app.cookie(ctx.request)))
    if earlier is not None:  # this browser's earlier session ends with the new sign-in
        await close_web_session(app, earlier, "exit")
    name, password = ctx.form.get("name", "").strip(), ctx.form.get("password", "")

    def sign_in(store: SiteStore) -> WebSession:
        who = authenticate(store, name, password, purpose="web app sign-in", terminal=terminal)
        session = open_session(store, who, purpose="web app")
        return WebSession(
            session=session,
            full_name=who.account.full_name,
            roles=tuple(who.account.roles),
            csrf=secrets.token_urlsafe(32),
            remote_address=address,
        )

    try:
        web = await app.sign_ins.run(sign_in)
    except (AuthenticationError, AccountLockedError, AccountDisabledError, PasswordExpiredError):
        # one answer for every cause (the journal has the true one): a stranger learns
        # nothing of which accounts exist or are locked
        app.throttle.failed(address)
        return await _form(ctx, REFUSED, 401)
    app.throttle.succeeded(address)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(app.cookie(ctx.request), app.sessions.create(web), **_cookie_options(ctx))
    response.delete_cookie(pre, **_cookie_options(ctx))
    return response


async def logout(ctx: Ctx) -> Response:
    await close_web_session(ctx.app, ctx.me, "exit")
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(ctx.app.cookie(ctx.request), **_cookie_options(ctx))
    return response


ROUTES = (
    RouteSpec("/login", "GET", login_page, "public"),
    RouteSpec("/login", "POST", login, "public"),
    RouteSpec("/logout", "POST", logout, "session"),
)
