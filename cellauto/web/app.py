"""The web app's factory: its routes, templates, static files and middleware.

Everything but the sign-in page and the static files needs a signed-in person: without
an open session every other path sends the browser to ``/login`` (303). Signing in is the
site's own :func:`~cellauto.site.auth.authenticate` (lockout, expiry, every failure
journaled) and opens a session journaled with the browser's address; the browser gets a
random token in an ``HttpOnly; SameSite=Strict`` cookie (``__Host-`` and ``Secure`` over
HTTPS). Every POST must come from this app's own pages: its ``Origin`` (or ``Referer``)
is this server's, and it carries the session's synchronizer token (the sign-in form: a
pre-session token in a cookie of its own). A session unused longer than the site
policy's idle time is closed (journaled, cause ``idle``) at its next request.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import anyio
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from cellauto.errors import AuthenticationError, CellautoError
from cellauto.records import Journal
from cellauto.records.site_store import SiteStore
from cellauto.site.auth import authenticate, close_session, open_session
from cellauto.site.store import open_site_store
from cellauto.web.config import WebConfig
from cellauto.web.forms import FormError, read_form
from cellauto.web.security import SecurityHeaders, web_terminal
from cellauto.web.sessions import SessionTable, WebSession

__all__ = ["create_app", "templates"]

_HERE = Path(str(files("cellauto.web")))
_PRE = "cellauto_pre"
_log = logging.getLogger(__name__)
T = TypeVar("T")


def templates() -> Environment:
    """The page templates: autoescaped, undefined names an error."""
    return Environment(
        loader=FileSystemLoader(_HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
    )


def _same_origin(request: Request) -> bool:
    """The POST came from a page of this server (Origin, else Referer, must match)."""
    own = f"{request.url.scheme}://{request.url.netloc}"
    origin = request.headers.get("origin")
    if origin is None:
        referer = request.headers.get("referer")
        if referer is None:
            return False
        parts = urlsplit(referer)
        origin = f"{parts.scheme}://{parts.netloc}"
    return origin == own


def _equal(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and hmac.compare_digest(a, b)


def create_app(config: WebConfig) -> Starlette:
    """The web app over the journal ``config.db``."""
    pages = templates()
    sessions = SessionTable()
    cookie = "__Host-cellauto" if config.secure else "cellauto_session"

    async def in_thread(work: Callable[[SiteStore], T]) -> T:
        def run() -> T:
            with open_site_store(config.db) as store:
                return work(store)

        return await anyio.to_thread.run_sync(run)

    def page(name: str, status: int = 200, **values: Any) -> HTMLResponse:
        return HTMLResponse(pages.get_template(name).render(**values), status_code=status)

    def refused(status: int, why: str, request: Request) -> HTMLResponse:
        client = request.client.host if request.client else "?"
        _log.warning("refused %s %s from %s: %s", request.method, request.url.path, client, why)
        return HTMLResponse(f"<!doctype html><title>Refused</title><p>{why}</p>", status)

    def login_form(message: str = "", status: int = 200) -> Response:
        token = secrets.token_urlsafe(24)
        response = page(
            "login.html", status, secure=config.secure, csrf_login=token, message=message
        )
        response.set_cookie(
            _PRE, token, httponly=True, samesite="strict", secure=config.secure, path="/"
        )
        return response

    async def current(request: Request) -> WebSession | None:
        """The request's open session; an idle one is closed (journaled) and None."""
        token = request.cookies.get(cookie)
        web = sessions.get(token)
        if web is None or token is None:
            return None
        if web.session.idle():
            sessions.drop(token)
            terminal = web_terminal(web.remote_address)
            await in_thread(lambda store: close_session(store, web.session, "idle", terminal))
            return None
        web.session.touch()
        return web

    async def login_page(request: Request) -> Response:
        return login_form()

    async def login(request: Request) -> Response:
        if not _same_origin(request):
            return refused(403, "this form was not posted from this server's pages", request)
        try:
            form = await read_form(request)
        except FormError as exc:
            return refused(400, str(exc), request)
        if not _equal(form.get("csrf_login"), request.cookies.get(_PRE)):
            return login_form("The sign-in form expired; sign in again.", 403)
        name, password = form.get("name", "").strip(), form.get("password", "")
        address = request.client.host if request.client else None
        terminal = web_terminal(address)

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
            web = await in_thread(sign_in)
        except AuthenticationError:
            return login_form("The user name or the password is wrong.", 401)
        except CellautoError as exc:  # locked, disabled, expired: the site's own words
            return login_form(str(exc), 403)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            cookie,
            sessions.create(web),
            httponly=True,
            samesite="strict",
            secure=config.secure,
            path="/",
        )
        response.delete_cookie(_PRE, path="/")
        return response

    async def logout(request: Request) -> Response:
        web = await current(request)
        if web is None:
            return RedirectResponse("/login", status_code=303)
        if not _same_origin(request):
            return refused(403, "this form was not posted from this server's pages", request)
        try:
            form = await read_form(request)
        except FormError as exc:
            return refused(400, str(exc), request)
        if not _equal(form.get("csrf"), web.csrf):
            return refused(403, "the form's token is not this session's", request)
        token = request.cookies.get(cookie)
        if token is not None:
            sessions.drop(token)
        terminal = web_terminal(web.remote_address)
        await in_thread(lambda store: close_session(store, web.session, "exit", terminal))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(cookie, path="/")
        return response

    async def overview(request: Request) -> Response:
        web = await current(request)
        if web is None:
            return RedirectResponse("/login", status_code=303)

        def runs() -> list[Any]:
            with Journal(config.db, create=False) as journal:
                return journal.runs()

        return page(
            "overview.html",
            runs=await anyio.to_thread.run_sync(runs),
            account=web.account,
            full_name=web.full_name,
            csrf=web.csrf,
        )

    async def elsewhere(request: Request) -> Response:
        if await current(request) is None:
            return RedirectResponse("/login", status_code=303)
        return refused(404, "no such page", request)

    app = Starlette(
        routes=[
            Route("/login", login_page, methods=["GET"]),
            Route("/login", login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/", overview, methods=["GET"]),
            Mount("/static", app=StaticFiles(directory=_HERE / "static"), name="static"),
            Route("/{path:path}", elsewhere, methods=["GET", "POST"]),
        ],
        middleware=[Middleware(SecurityHeaders, secure=config.secure)],
    )
    app.state.config = config
    app.state.sessions = sessions
    return app
