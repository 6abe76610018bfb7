"""The operator task inbox: what waits for a person, answered with a signature.

``GET /tasks`` lists the open tasks of every run (the person's own first, the rest with
why not), ``GET /tasks/cards`` is the same list alone (the page's script fetches it again
when the line changes), and ``POST /tasks/{task_id}/answer`` signs an answer: the
permission of the phase the page showed is checked (and a refusal journaled) before the
password is read, then :func:`~cellauto.site.task_answers.answer_task` checks everything
again under the write lock (training, self-verification, the task still open in that
phase, of that run) and journals its own refusals. A refused answer renders the inbox
again with the reason; an answer recorded shows "waiting for the controller" until the
run's controller takes it up, or "refused by the controller: ..." if it did not.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from cellauto.errors import CellautoError, RunNotFoundError
from cellauto.records import Journal
from cellauto.records.site_store import SiteStore
from cellauto.records.task_rows import read_task
from cellauto.site.auth import Authenticated
from cellauto.site.roles import Permission
from cellauto.site.task_answers import AnswerGiven, answer_task
from cellauto.web.acts import signed_act
from cellauto.web.context import Ctx
from cellauto.web.errors import status_of
from cellauto.web.guard import journal_refusal
from cellauto.web.routes_table import RouteSpec
from cellauto.web.task_cards import Inbox, SessionAnswers, read_inbox, task_permission

__all__ = ["ROUTES", "TaskNotFoundError"]


class TaskNotFoundError(RunNotFoundError):
    """No task by that id in this journal (answered as 404, like a run not found)."""


def session_answers(request: Request) -> SessionAnswers:
    """The answers given in this server's web sessions (dropped when a session ends)."""
    answers: SessionAnswers = request.app.state.services.task_answers
    return answers


async def _inbox(ctx: Ctx) -> Inbox:
    name, session_id = ctx.me.account, ctx.me.session.id
    answers = session_answers(ctx.request)

    def read(journal: Journal) -> Inbox:
        return read_inbox(journal.read_connection(), name, answers, session_id)

    return await ctx.read(read)


async def _page(ctx: Ctx, *, refusal: str | None = None, status: int = 200) -> Response:
    return await ctx.page("tasks.html", status, inbox=await _inbox(ctx), refusal=refusal)


async def inbox_page(ctx: Ctx) -> Response:
    return await _page(ctx)


async def inbox_cards(ctx: Ctx) -> Response:
    """The cards alone, for the page's script (a background fetch)."""
    html = ctx.app.pages.get_template("_tasks.html").render(
        me=ctx.me, csrf=ctx.me.csrf, inbox=await _inbox(ctx)
    )
    return HTMLResponse(html)


def _task_id(ctx: Ctx) -> str:
    return ctx.param("task_id").strip().upper()


async def answer_permission(ctx: Ctx) -> Permission:
    """The permission the answer needs: the task's own (perform) or ``step.verify``, of
    the phase the page showed. A task id this journal does not know is refused (404) and
    journaled, as :func:`answer_task` would."""
    task_id = _task_id(ctx)
    row = await ctx.read(lambda journal: read_task(journal.read_connection(), task_id))
    if row is None:
        name, terminal = ctx.me.account, ctx.terminal
        detail = f"no task {task_id} in this journal"

        where = f"web: POST {ctx.request.url.path}"
        await ctx.write(
            lambda store: journal_refusal(
                store, name, terminal, "task_missing", f"{where}: {detail}", task_id=task_id
            )
        )
        raise TaskNotFoundError(f"{detail}; the inbox (/tasks) lists the open ones")
    shown = ctx.form.get("phase")
    return task_permission(row, shown if shown in ("perform", "verify") else None)


async def answer(ctx: Ctx) -> Response:
    task_id = _task_id(ctx)
    form = ctx.form
    reject = form.get("decision") == "reject"
    reason = form.get("reason", "").strip()
    phase = form.get("phase") or None
    run_id = form.get("run_id") or None
    value = form.get("value")
    if reject and len(reason) < 3:
        return await _page(
            ctx, refusal="rejecting an entry needs a reason: say what is wrong with it", status=422
        )

    def act(store: SiteStore, who: Authenticated) -> AnswerGiven:
        return answer_task(
            store,
            who,
            task_id,
            value=value,
            reject=reject,
            reason=reason,
            run_id=run_id,
            phase=phase,
        )

    try:
        given = await signed_act(ctx, f"answer task {task_id}", act)
    except CellautoError as exc:  # the site's refusals (journaled by it) and bad input
        return await _page(ctx, refusal=str(exc), status=status_of(exc))
    session_answers(ctx.request).add(ctx.me.session.id, given)
    what = "rejected" if reject else "performed" if given.task.phase == "perform" else "verified"
    return ctx.redirect(
        "/tasks", flash=f"{given.task.name}: {what} and signed — waiting for the controller"
    )


ROUTES = (
    RouteSpec("/tasks", "GET", inbox_page, "session"),
    RouteSpec("/tasks/cards", "GET", inbox_cards, "session", background=True),
    RouteSpec(
        "/tasks/{task_id}/answer",
        "POST",
        answer,
        answer_permission,
        doing="answer this task",
    ),
)
