"""The web app's factory: routes from the route table, each behind the same checks.

Every route but the sign-in page and the static files needs a signed-in person: without
an open session a page sends the browser to ``/login`` (303) and a POST is refused (401).
Every POST must come from this app's own pages (its ``Origin``, else ``Referer``, is
this server's) and carry its session's synchronizer token; then the route's permission
is checked against the person's account as it is now (a refusal is journaled). A session
unused longer than the site policy's idle time is closed (journaled, cause ``idle``) at
its next request; one whose account was locked or disabled since, likewise (``lock``).
When the server stops, the sessions still open are closed in the journal (``exit``);
at its start, those a stopped server left open (:mod:`~cellauto.web.session_sweep`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from cellauto.errors import CellautoError
from cellauto.site.roles import Permission
from cellauto.web.config import WebConfig
from cellauto.web.context import Ctx
from cellauto.web.errors import status_of
from cellauto.web.forms import FormError, read_form
from cellauto.web.guard import account_gone, permission_refusal, same_origin, token_matches
from cellauto.web.request_sweeper import sweep_requests
from cellauto.web.routes_table import RouteSpec, all_routes
from cellauto.web.security import SecurityHeaders
from cellauto.web.services import HERE, Services, templates
from cellauto.web.session_sweep import (
    close_orphaned_sessions,
    close_web_session,
    sweep_sessions,
)
from cellauto.web.sessions import WebSession

__all__ = ["create_app", "templates"]

_log = logging.getLogger(__name__)


async def current(app: Services, request: Request) -> WebSession | None:
    """The request's open session: None without one, or when it went idle or its account
    may no longer act (it is closed and journaled then). Background requests and the
    event stream are checked too: a locked person reads nothing more."""
    web = app.sessions.get(request.cookies.get(app.cookie(request)))
    if web is None:
        return None
    if web.session.closed is not None or web.session.idle():
        await close_web_session(app, web, web.session.closed or "idle")
        return None
    if await app.reads.run(lambda journal: account_gone(journal, web.account)):
        await close_web_session(app, web, "lock")
        return None
    return web


def used_by_person(request: Request, spec: RouteSpec) -> bool:
    """Whether this request, which passed every check, is the person using the session
    (the idle timeout starts again): not a page script's background fetch, and not a
    request another site's page made the browser send (``Sec-Fetch-Site``: cookies are
    sent to every port of this host, so a page elsewhere could keep a session alive)."""
    site = request.headers.get("sec-fetch-site")
    return not spec.background and site in (None, "same-origin", "none")


def _endpoint(app: Services, spec: RouteSpec) -> object:
    async def handle(request: Request) -> Response:
        ctx = Ctx(request, app, None)
        if spec.access != "public":
            ctx.web = await current(app, request)
            if ctx.web is None:
                if spec.method == "GET":
                    return RedirectResponse("/login", status_code=303)
                return await ctx.refuse(401, "sign in first: this request has no open session")
        if spec.method == "POST":
            if not same_origin(request):
                return await ctx.refuse(403, "this form was not posted from this server's pages")
            try:
                ctx.form = await read_form(request)
            except FormError as exc:
                return await ctx.refuse(400, str(exc))
            if ctx.web is not None:
                given = ctx.form.get("csrf") or request.headers.get("x-csrf-token")
                if not token_matches(given, ctx.web.csrf):
                    return await ctx.refuse(403, "the form's token is not this session's")
            permission: Permission | None = None
            if isinstance(spec.access, Permission):
                permission = spec.access
            elif callable(spec.access):
                try:
                    permission = await spec.access(ctx)
                except CellautoError as exc:
                    return await ctx.refuse(status_of(exc), str(exc))
            if permission is not None:
                refusal = await permission_refusal(ctx, permission, spec.doing or "do this")
                if refusal is not None:
                    return await ctx.refuse(403, refusal)
        if ctx.web is not None and used_by_person(request, spec):
            ctx.web.session.touch()  # only once every check passed
        try:
            return await spec.handler(ctx)
        except CellautoError as exc:
            return await ctx.refuse(status_of(exc), str(exc))

    return handle


def create_app(config: WebConfig) -> Starlette:
    """The web app over the journal ``config.db``."""
    services = Services(config)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await services.acts.run(close_orphaned_sessions)
        await services.hub.start()
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(sweep_sessions, services)
                group.start_soon(sweep_requests, services)  # expired command requests
                yield
                group.cancel_scope.cancel()
        finally:
            await services.hub.stop()
            for web in services.sessions.open_sessions():
                await close_web_session(services, web, "exit")
            services.close()

    async def elsewhere(request: Request) -> Response:
        if request.url.path == "/favicon.ico":
            return Response(status_code=404)
        ctx = Ctx(request, services, await current(services, request))
        if ctx.web is None:
            return RedirectResponse("/login", status_code=303)
        return await ctx.refuse(404, "no such page", log=False)

    routes: list[BaseRoute] = [
        Route(spec.path, _endpoint(services, spec), methods=[spec.method])  # type: ignore[arg-type]
        for spec in all_routes()
    ]
    routes += [
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
        Route("/{path:path}", elsewhere, methods=["GET", "POST"]),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(SecurityHeaders, secure=config.secure)],
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.services = services
    app.state.sessions = services.sessions
    return app
