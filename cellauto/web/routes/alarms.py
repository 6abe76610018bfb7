"""The alarms of the line, acknowledged with a comment.

``GET /alarms`` lists the unacknowledged alarms of every run (most severe first, then
oldest) and the latest acknowledged ones with who and why; ``GET /alarms/list`` is that
list alone (the page's script fetches it again when the line changes). ``POST
/alarms/{run_id}/{seq}/ack`` acknowledges one with a comment (3 to 500 characters) as
the signed-in person, through the site's
:func:`~cellauto.site.alarms.acknowledge_alarm` (it re-confirms the account and the
permission under the write lock, and journals its refusals).
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.responses import HTMLResponse, Response

from cellauto.errors import CellautoError, PermissionRefusedError, RunNotFoundError
from cellauto.records import Journal
from cellauto.records.refs import SiteRef
from cellauto.records.site_payload_base import Terminal
from cellauto.records.site_store import SiteStore
from cellauto.site.alarms import AlarmRow, acknowledge_alarm, open_alarms
from cellauto.site.auth import Authenticated
from cellauto.site.policy import current_policy, utc_datetime, zone_of
from cellauto.site.replay import confirm_account
from cellauto.site.roles import Permission
from cellauto.site.run_facts import run_facts
from cellauto.web.context import Ctx
from cellauto.web.errors import status_of
from cellauto.web.routes_table import RouteSpec

__all__ = ["ROUTES", "AlarmNotFoundError", "session_person"]

RECENT_ACKS = 20
_SEVERITY = {"critical": 0, "major": 1, "minor": 2, "warning": 3}


class AlarmNotFoundError(RunNotFoundError):
    """An alarm address that is no record number (answered as 404)."""


@dataclass(frozen=True)
class AlarmView:
    """An alarm as the page shows it."""

    alarm: AlarmRow
    protocol: str
    raised: str
    acked: str | None


@dataclass(frozen=True)
class AlarmsPage:
    open: list[AlarmView]
    acknowledged: list[AlarmView]


def _read(journal: Journal) -> AlarmsPage:
    conn = journal.read_connection()
    policy, _ = current_policy(conn)
    zone = zone_of(policy)
    protocols: dict[str, str] = {}

    def view(row: AlarmRow) -> AlarmView:
        if row.run_id not in protocols:
            facts = run_facts(conn, row.run_id)
            protocols[row.run_id] = f"{facts.protocol} {facts.version}" if facts else "?"

        def when(ns: int) -> str:
            return utc_datetime(ns).astimezone(zone).strftime("%Y-%m-%d %H:%M %Z").strip()

        acked = None if row.acked_wall_ns is None else when(row.acked_wall_ns)
        return AlarmView(row, protocols[row.run_id], when(row.wall_time_ns), acked)

    every = open_alarms(conn, include_acknowledged=True)
    waiting = sorted(
        (a for a in every if a.acked_by is None),
        key=lambda a: (_SEVERITY.get(a.severity, 4), a.wall_time_ns),
    )
    done = sorted((a for a in every if a.acked_by), key=lambda a: -(a.acked_wall_ns or 0))
    return AlarmsPage([view(a) for a in waiting], [view(a) for a in done[:RECENT_ACKS]])


async def _page(ctx: Ctx, *, refusal: str | None = None, status: int = 200) -> Response:
    return await ctx.page("alarms.html", status, alarms=await ctx.read(_read), refusal=refusal)


async def alarms_page(ctx: Ctx) -> Response:
    return await _page(ctx)


async def alarms_list(ctx: Ctx) -> Response:
    """The lists alone, for the page's script (a background fetch)."""
    html = ctx.app.pages.get_template("_alarms.html").render(
        me=ctx.me, csrf=ctx.me.csrf, alarms=await ctx.read(_read)
    )
    return HTMLResponse(html)


def session_person(
    store: SiteStore, account: str, session_id: str, terminal: Terminal
) -> Authenticated:
    """The web session's person as an :class:`Authenticated`, the account as the site
    confirms it now, for an act that is **not an electronic signature**: acknowledging
    an alarm approves nothing (the web design's answer 1), so no password is asked; the
    person is the one who signed in to this session, and the record carries the
    session's id and the browser's address. ``components`` says what identified them
    (their user name and password at sign-in); :func:`acknowledge_alarm` reads only the
    account, the session id and the terminal."""
    with store.reading() as conn:
        confirmed = confirm_account(conn, account)
    if confirmed is None:
        raise PermissionRefusedError(f"no account {account!r} in this journal any more")
    return Authenticated(
        account=confirmed[0],
        session_id=session_id,
        components="user_id+password",
        terminal=terminal,
    )


async def acknowledge(ctx: Ctx) -> Response:
    run_id, seq_text = ctx.param("run_id"), ctx.param("seq")
    if not seq_text.isdigit():
        raise AlarmNotFoundError(f"no alarm #{seq_text} of run {run_id}: /alarms lists them")
    seq, comment = int(seq_text), ctx.form.get("comment", "")
    account, session_id, terminal = ctx.me.account, ctx.me.session.id, ctx.terminal

    def act(store: SiteStore) -> SiteRef:
        who = session_person(store, account, session_id, terminal)
        return acknowledge_alarm(store, who, run_id, seq, comment=comment)

    try:
        await ctx.write(act)
    except CellautoError as exc:  # the site's refusals (journaled by it) and bad input
        return await _page(ctx, refusal=str(exc), status=status_of(exc))
    return ctx.redirect("/alarms", flash=f"Alarm #{seq} of run {run_id[:12]} acknowledged.")


ROUTES = (
    RouteSpec("/alarms", "GET", alarms_page, "session"),
    RouteSpec("/alarms/list", "GET", alarms_list, "session", background=True),
    RouteSpec(
        "/alarms/{run_id}/{seq}/ack",
        "POST",
        acknowledge,
        Permission.ALARM_ACKNOWLEDGE,
        doing="acknowledge alarms",
    ),
)
