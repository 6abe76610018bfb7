"""A batch's release in the browser: its disposition, what stands against a release (on
demand: the check verifies the journal, so it never runs on page load), and QA's signed
release or rejection (:func:`~cellauto.review.disposition.dispose_batch`). A refused
release shows every reason (409); the refusal is journaled by the act.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from cellauto.errors import BadInputError, CellautoError, ReleaseRefusedError
from cellauto.records import Journal
from cellauto.records.site_payloads_review import ReleaseProblem
from cellauto.records.site_store import SiteStore
from cellauto.review.disposition import Disposition, dispose_batch
from cellauto.review.read import read_disposition
from cellauto.review.release_rules import release_problems
from cellauto.site.auth import Authenticated
from cellauto.site.roles import Permission
from cellauto.site.run_facts import run_facts
from cellauto.web.acts import signed_act
from cellauto.web.context import Ctx
from cellauto.web.errors import status_of
from cellauto.web.routes.qa_common import may, parse_form, resolve_run, shown_time
from cellauto.web.routes_table import RouteSpec

__all__ = ["ROUTES"]


class ReleaseForm(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    decision: Literal["release", "reject"]
    reason: str = Field("", max_length=500)


async def release_page(
    ctx: Ctx,
    *,
    status: int = 200,
    refusal: str = "",
    problems: list[ReleaseProblem] | None = None,
) -> Response:
    given = ctx.param("run_id")
    check = ctx.request.method == "GET" and ctx.request.query_params.get("check") == "1"
    releaser = ctx.me.account if Permission.BATCH_RELEASE.value in may(ctx.me) else None

    def read(journal: Journal) -> dict[str, Any]:
        conn = journal.read_connection()
        run_id = resolve_run(journal, given)
        disposition = read_disposition(conn, run_id)
        found = release_problems(journal, conn, run_id, releaser=releaser) if check else None
        return {
            "run": run_facts(conn, run_id),
            "disposition": disposition,
            "decided": None if disposition is None else shown_time(disposition.decided_wall_ns),
            "checked": found,
        }

    values = await ctx.read(read)
    return await ctx.page(
        "release.html",
        status,
        may=may(ctx.me),
        refusal=refusal,
        problems=problems or [],
        form=ctx.form,
        **values,
    )


async def dispose(ctx: Ctx) -> Response:
    run_id = ctx.param("run_id")
    try:
        form = parse_form(ReleaseForm, ctx.form, "release decision")
        if form.decision == "reject" and not form.reason:
            raise BadInputError("a rejection needs a reason (why the batch is rejected)")
    except BadInputError as exc:
        return await release_page(ctx, status=422, refusal=str(exc))
    db = ctx.app.config.db

    def act(store: SiteStore, who: Authenticated) -> Disposition:
        with Journal(db, create=False) as journal:
            return dispose_batch(
                store, journal, who, run_id, decision=form.decision, reason=form.reason
            )

    try:
        done = await signed_act(ctx, f"release {form.decision} {run_id}", act)
    except ReleaseRefusedError as refused:
        reasons = [p for p in refused.problems if isinstance(p, ReleaseProblem)]
        head = str(refused).splitlines()[0]
        return await release_page(ctx, status=409, refusal=head, problems=reasons)
    except CellautoError as exc:
        return await release_page(ctx, status=status_of(exc), refusal=str(exc))
    coa = done.coa
    return ctx.redirect(
        f"/runs/{run_id}/release",
        flash=f"batch {coa.batch_din or run_id} ({coa.product}) {coa.decision} by {ctx.me.account}",
    )


ROUTES = (
    RouteSpec("/runs/{run_id}/release", "GET", release_page, "session"),
    RouteSpec(
        "/runs/{run_id}/release",
        "POST",
        dispose,
        Permission.BATCH_RELEASE,
        "release or reject batches",
    ),
)
