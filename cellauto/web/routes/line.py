"""The line overview (every run at a glance) and the event stream that keeps pages live.

``GET /`` renders the overview from the hub's in-memory :class:`LineModel` (active runs
and those ended in the last 7 days; ``?ended=all``: every run). ``GET /line/rows`` is the
same table body alone, refetched by ``live.js`` after a lost connection.

``GET /events?topics=overview,counts,run:<id>,tasks,alarms`` is a server-sent event
stream of those topics (see :mod:`cellauto.web.hub`). It needs a session but never
counts as the person using it (the idle timeout runs on); before every event, and every
second while nothing happens, it checks the session is still open (and every 5 s that
its account is not locked or disabled) and, when it was closed or went idle, sends
``logout`` and ends. It starts with ``retry:`` and sends a comment every 15 s (proxies
keep it open; a dead client is noticed).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import anyio
import orjson
from starlette.responses import HTMLResponse, Response, StreamingResponse

from cellauto.web.context import Ctx
from cellauto.web.guard import account_gone
from cellauto.web.hub import Event, parse_topics
from cellauto.web.line_model import RunView
from cellauto.web.routes_table import RouteSpec
from cellauto.web.services import Services
from cellauto.web.session_sweep import close_web_session
from cellauto.web.sessions import WebSession

__all__ = ["ACCOUNT_CHECK_S", "KEEP_ALIVE_S", "ROUTES", "SESSION_CHECK_S"]

KEEP_ALIVE_S = 15.0
SESSION_CHECK_S = 1.0
ACCOUNT_CHECK_S = 5.0
RETRY_MS = 2000


async def _overview(ctx: Ctx, every: bool) -> tuple[list[RunView], int, int]:
    """The overview's rows, read in a worker thread: the poller holds the model's lock
    while it applies a burst of records, and the event loop must not wait for it."""
    return await anyio.to_thread.run_sync(lambda: ctx.app.hub.overview(every=every))


async def overview(ctx: Ctx) -> Response:
    every = ctx.request.query_params.get("ended") == "all"
    rows, _, _ = await _overview(ctx, every)
    return await ctx.page("overview.html", runs=rows, every=every)


async def rows(ctx: Ctx) -> Response:
    every = ctx.request.query_params.get("ended") == "all"
    found, _, _ = await _overview(ctx, every)
    html = ctx.app.pages.get_template("_run_rows.html").render(runs=found)
    return HTMLResponse(html)


def _ended(app: Services, web: WebSession) -> str | None:
    """Why ``web`` may no longer receive events (None: it is open)."""
    if not any(held is web for held in app.sessions.open_sessions()):
        return "closed"
    if web.session.closed is not None:
        return web.session.closed
    if web.session.idle():
        return "idle"
    return None


async def events(ctx: Ctx) -> Response:
    topics = parse_topics(ctx.request.query_params.get("topics", "counts"))
    app, web = ctx.app, ctx.me
    sub = app.hub.subscribe(topics)

    def logout(why: str) -> bytes:
        return Event("logout", orjson.dumps({"why": why}).decode()).encode()

    async def stream() -> AsyncIterator[bytes]:
        try:
            yield f"retry: {RETRY_MS}\n\n".encode()
            said = checked = time.monotonic()
            while True:
                why = _ended(app, web)
                if why is None and time.monotonic() - checked >= ACCOUNT_CHECK_S:
                    checked = time.monotonic()  # locked or disabled since: no more events
                    if await app.reads.run(lambda journal: account_gone(journal, web.account)):
                        await close_web_session(app, web, "lock")
                        why = "lock"
                if why is not None:
                    yield logout(why)
                    return
                try:
                    event = await sub.next(SESSION_CHECK_S)
                except EOFError:
                    return
                if event is None:
                    if time.monotonic() - said >= KEEP_ALIVE_S:
                        said = time.monotonic()
                        yield b": keep-alive\n\n"
                    continue
                why = _ended(app, web)
                if why is not None:
                    yield logout(why)
                    return
                said = time.monotonic()
                yield event.encode()
        finally:
            sub.close()

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


ROUTES = (
    RouteSpec("/", "GET", overview, "session"),
    RouteSpec("/line/rows", "GET", rows, "session", background=True),
    RouteSpec("/events", "GET", events, "session", background=True),
)
