"""One request as a handler sees it: the request, the signed-in person, the form it
posted (already checked to come from this app's page), and the app's shared parts.

Handlers render pages through :meth:`Ctx.page` (which adds what the layout needs: the
person, the CSRF token, the one-shot message, the badges) and answer a POST with
:meth:`Ctx.redirect` (303 See Other: post/redirect/get).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse

from cellauto.records import Journal
from cellauto.records import backend as db
from cellauto.records.site_payload_base import Terminal
from cellauto.records.site_store import SiteStore
from cellauto.web.security import web_terminal
from cellauto.web.services import Services
from cellauto.web.sessions import WebSession

__all__ = ["REFUSALS", "Ctx", "NavCounts", "RefusalLog", "nav_counts"]

_log = logging.getLogger(__name__)
T = TypeVar("T")


class RefusalLog:
    """The server log's lines for refused requests, at most ``limit`` per ``window_s``
    (a flood of forged requests must not fill the disk); what was left out is counted
    in the next line written."""

    def __init__(self, limit: int = 30, window_s: float = 60.0) -> None:
        self.limit, self.window_s = limit, window_s
        self._start = -window_s
        self._written = 0
        self.suppressed = 0

    def warn(self, message: str, *args: object) -> bool:
        now = time.monotonic()
        if now - self._start >= self.window_s:
            self._start, self._written = now, 0
        if self._written >= self.limit:
            self.suppressed += 1
            return False
        self._written += 1
        if self.suppressed:
            message += " (%d refusal(s) not logged before this one)"
            args = (*args, self.suppressed)
            self.suppressed = 0
        _log.warning(message, *args)
        return True


REFUSALS = RefusalLog()


@dataclass(frozen=True)
class NavCounts:
    """The layout's badges: open operator tasks and unacknowledged alarms."""

    tasks: int = 0
    alarms: int = 0


def nav_counts(journal: Journal) -> NavCounts:
    """Open tasks and unacknowledged alarms of the whole journal (two indexed counts;
    a file older than those tables counts none)."""
    conn = journal.read_connection()
    tables = db.tables(conn)
    tasks = (
        conn.execute("SELECT count(*) FROM tasks WHERE status = 'open'").fetchone()[0]
        if "tasks" in tables
        else 0
    )
    alarms = conn.execute("SELECT count(*) FROM records WHERE kind = 'alarm'").fetchone()[0]
    if "alarm_acks" in tables:
        alarms -= conn.execute("SELECT count(*) FROM alarm_acks").fetchone()[0]
    return NavCounts(tasks=tasks, alarms=max(alarms, 0))


@dataclass
class Ctx:
    """A request, its person (None only on public routes) and its checked form."""

    request: Request
    app: Services
    web: WebSession | None
    form: dict[str, str] = field(default_factory=dict)

    @property
    def me(self) -> WebSession:
        """The signed-in person (the route table guarantees one on non-public routes)."""
        if self.web is None:
            raise RuntimeError("a public route asked for the signed-in person (a bug)")
        return self.web

    @property
    def address(self) -> str | None:
        return self.request.client.host if self.request.client else None

    @property
    def terminal(self) -> Terminal:
        """Where an act of this request comes from: this server, the browser's address."""
        return web_terminal(self.address)

    def param(self, name: str) -> str:
        """A path parameter (``/runs/{run_id}``)."""
        return str(self.request.path_params[name])

    async def read(self, work: Callable[[Journal], T]) -> T:
        """``work(journal)`` on a read-only journal connection, in a worker thread."""
        return await self.app.reads.run(work)

    async def write(self, work: Callable[[SiteStore], T]) -> T:
        """``work(store)`` on the act lane (at most two at once), in a worker thread."""
        return await self.app.acts.run(work)

    async def page(self, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        """The page ``template`` inside the layout, with the person, the CSRF token, the
        one-shot message and the badges."""
        counts = await self.read(nav_counts) if self.web is not None else NavCounts()
        flash = None
        if self.web is not None:
            flash, self.web.flash = self.web.flash, None
        html = self.app.pages.get_template(template).render(
            me=self.web,
            csrf=self.web.csrf if self.web is not None else "",
            flash=flash,
            counts=counts,
            path=self.request.url.path,
            stale=self.app.hub.failure,
            **values,
        )
        return HTMLResponse(html, status_code=status)

    def redirect(self, to: str, flash: str | None = None) -> RedirectResponse:
        """303 to ``to`` (post/redirect/get), with ``flash`` shown on the next page."""
        if flash is not None and self.web is not None:
            self.web.flash = flash
        return RedirectResponse(to, status_code=303)

    async def refuse(self, status: int, message: str, *, log: bool = True) -> HTMLResponse:
        """The error page with ``message`` (the refusal is also in the server log)."""
        if log:
            REFUSALS.warn(
                "refused %s %s from %s: %s",
                self.request.method,
                self.request.url.path,
                self.address or "?",
                message,
            )
        return await self.page("error.html", status, message=message)
