"""The run page: timeline, checks, plots, instrument I/O, and the ISA-88 commands.

``GET /runs/{run_id}`` renders the page; its script keeps it live from three background
fetches: ``/live`` (state, timeline, requests and which commands are enabled, as HTML
fragments in JSON), ``/series?since=SEQ`` (the plotted points the records after SEQ
added; ``?after=T``: those after process time T) and ``/io?step=NAME&from=SEQ`` (a
step's instrument I/O, on demand).

``POST /runs/{run_id}/command`` asks the run's controller to Hold, Restart, Stop or
Abort, with a reason and a signature. The guard checks the command's permission first
(a Restart of a run held by a deviation needs ``run.restart_after_deviation``, as the
controller would refuse it without a supervisor's approval); then a command the run's
state does not allow is refused (409, journaled ``signature_refused`` cause
``run_state``) before any password is read; then the password, and the signed request
(``request_command``). The handler does not wait for the controller: the page shows the
request until the controller settles it, or this server settles it expired
(:mod:`cellauto.web.request_sweeper`).
"""

from __future__ import annotations

from typing import Any

from starlette.responses import HTMLResponse, JSONResponse, Response

from cellauto.errors import BadInputError, RunNotFoundError, StateCommandError
from cellauto.protocols.states import State, allowed_commands
from cellauto.records import Journal
from cellauto.records.refs import Meaning
from cellauto.records.site_store import SiteStore
from cellauto.site.auth import Authenticated
from cellauto.site.roles import Permission
from cellauto.site.run_facts import run_facts
from cellauto.site.run_requests import RequestGiven, hold_deviation, request_command
from cellauto.web.acts import signed_act
from cellauto.web.context import Ctx
from cellauto.web.guard import journal_refusal
from cellauto.web.routes_table import RouteSpec
from cellauto.web.run_cache import RunRecordsCache
from cellauto.web.run_series import series_json
from cellauto.web.run_view import (
    COMMAND_PERMISSION,
    RunView,
    command_buttons,
    command_permission,
    current_state,
    io_page,
    run_records,
    run_view,
)

__all__ = ["EXPIRES_S", "ROUTES"]

EXPIRES_S = 30.0
"""How long a command request from the web waits for the run's controller."""


def _cache(ctx: Ctx) -> RunRecordsCache:
    """The app's cache of the records of runs whose pages are open (made at first use,
    on the event loop: no race)."""
    state = ctx.request.app.state
    cache = getattr(state, "run_records", None)
    if not isinstance(cache, RunRecordsCache):
        cache = state.run_records = RunRecordsCache()
    return cache


async def _view(ctx: Ctx) -> RunView:
    run_id, roles, cache = ctx.param("run_id"), ctx.me.roles, _cache(ctx)
    return await ctx.read(
        lambda journal: run_view(journal, run_id, roles, cache.records(journal, run_id))
    )


async def run_page(ctx: Ctx) -> Response:
    return await ctx.page("run.html", view=await _view(ctx), expires_s=EXPIRES_S)


def _fragment(ctx: Ctx, template: str, **values: Any) -> str:
    return ctx.app.pages.get_template(template).render(me=ctx.me, csrf=ctx.me.csrf, **values)


async def live(ctx: Ctx) -> Response:
    """The parts of the page that change, for the page's script."""
    view = await _view(ctx)
    return JSONResponse(
        {
            "run": view.header.run_id,
            "seq": view.header.last_seq,
            "state": view.header.state,
            "commands": {
                c.name: {"enabled": c.enabled, "why_not": c.why_not} for c in view.commands
            },
            "state_html": _fragment(ctx, "_run_state.html", view=view),
            "timeline_html": _fragment(ctx, "_run_timeline.html", view=view),
        }
    )


def _after(ctx: Ctx) -> float | None:
    given = ctx.request.query_params.get("after")
    if given in (None, ""):
        return None
    try:
        return float(given)
    except ValueError:
        raise BadInputError(f"after={given!r} is not a process time (epoch seconds)") from None


async def series(ctx: Ctx) -> Response:
    run_id, after = ctx.param("run_id"), _after(ctx)
    since = ctx.request.query_params.get("since")
    if since is not None and not since.isdigit():
        raise BadInputError(f"since={since!r} is not a record number")
    since_seq = None if since is None else int(since)

    cache = _cache(ctx)

    def read(journal: Journal) -> Any:
        return series_json(cache.records(journal, run_id), after, since_seq=since_seq)

    return JSONResponse(await ctx.read(read))


async def io(ctx: Ctx) -> Response:
    run_id = ctx.param("run_id")
    step = ctx.request.query_params.get("step", "")
    start = ctx.request.query_params.get("from", "0")
    if not step:
        raise BadInputError("which step's instrument I/O? give ?step=NAME")
    if not start.isdigit():
        raise BadInputError(f"from={start!r} is not a record number")

    def read(journal: Journal) -> Any:
        run_records(journal, run_id)  # 404 for an unknown run
        return io_page(journal, run_id, step, int(start))

    page = await ctx.read(read)
    if ctx.request.headers.get("x-cellauto-background") is None:  # followed without script
        return await ctx.page("_run_io_page.html", run_id=run_id, io=page)
    return HTMLResponse(_fragment(ctx, "_run_io.html", run_id=run_id, io=page))


def _command_name(ctx: Ctx) -> str:
    name = ctx.form.get("command", "").strip().lower()
    if name not in COMMAND_PERMISSION:
        raise BadInputError(
            f"{name or 'no command'!r} is not a command of a run: Hold, Restart, Stop or Abort"
        )
    return name


async def access_of_command(ctx: Ctx) -> Permission:
    """The permission the posted command needs (the route's access)."""
    name, run_id = _command_name(ctx), ctx.param("run_id")
    if name != "restart":
        return COMMAND_PERMISSION[name]

    def after_deviation(journal: Journal) -> bool:
        conn = journal.read_connection()
        if run_facts(conn, run_id) is None:
            raise RunNotFoundError(f"no run {run_id} in this journal")
        return hold_deviation(conn, run_id) is not None

    return command_permission(name, after_deviation=await ctx.read(after_deviation))


async def command(ctx: Ctx) -> Response:
    run_id, name = ctx.param("run_id"), _command_name(ctx)
    reason = ctx.form.get("reason", "").strip()
    if not reason:
        raise BadInputError(f"{name.capitalize()} needs a reason: why the batch must {name}")
    me, terminal = ctx.me.account, ctx.terminal

    def state_refusal(store: SiteStore) -> StateCommandError | None:
        with store.reading() as conn:
            facts = run_facts(conn, run_id)
            if facts is None:
                raise RunNotFoundError(f"no run {run_id} in this journal")
            state = current_state(conn, run_id)
        (button,) = [b for b in command_buttons(state, facts.ended, ()) if b.name == name]
        if button.allowed:
            return None
        try:
            allowed = [c.value for c in allowed_commands(State(state))]
        except ValueError:
            allowed = []
        refusal = StateCommandError(name.capitalize(), state, [] if facts.ended else allowed)
        ended = " (the run has ended)" if facts.ended else ""
        detail = f"web: POST {ctx.request.url.path}: {refusal}{ended}"
        journal_refusal(
            store, me, terminal, "run_state", detail, run_id=run_id, meaning=Meaning.PERFORMED
        )
        return refusal

    refused = await ctx.write(state_refusal)
    if refused is not None:
        raise refused

    def act(store: SiteStore, who: Authenticated) -> RequestGiven:
        return request_command(store, who, run_id, name, reason=reason, expires_s=EXPIRES_S)

    given = await signed_act(ctx, f"{name} run {run_id}", act)
    approval = " with approval of the deviation" if given.approval is not None else ""
    return ctx.redirect(
        f"/runs/{run_id}",
        flash=f"{name.capitalize()} requested{approval} — waiting for the controller",
    )


ROUTES = (
    RouteSpec("/runs/{run_id}", "GET", run_page, "session"),
    RouteSpec("/runs/{run_id}/live", "GET", live, "session", background=True),
    RouteSpec("/runs/{run_id}/series", "GET", series, "session", background=True),
    RouteSpec("/runs/{run_id}/io", "GET", io, "session", background=True),
    RouteSpec(
        "/runs/{run_id}/command",
        "POST",
        command,
        access_of_command,
        doing="give this command to a run",
    ),
)
