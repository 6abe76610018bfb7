"""QC results in the browser: a run's release plan with each test's results, verdicts and
verification; a result entered by hand (QC, signed ``performed``), verified by another
person (``verified``) or invalidated by QA (``approved``, with its cause).

The acts are :mod:`cellauto.review.qc`'s own, so every rule (the run ended, the test in
its plan, the sample the batch's, one valid result a test, never one's own verification,
an out-of-specification result invalidated only on its investigation) refuses and
journals as it does from the command line. A LIMS import stays on the command line
(``cellauto qc import``).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from cellauto.errors import BadInputError, CellautoError
from cellauto.records import Journal
from cellauto.records.backend import Conn
from cellauto.records.release_plan import ReleaseTest
from cellauto.records.site_store import SiteStore
from cellauto.review.coa import shown_result
from cellauto.review.qc import (
    QcAct,
    QcResultInput,
    Signed,
    add_result,
    invalidate_result,
    verify_result,
)
from cellauto.review.read import QcRow, confirm_run_review, read_qc_results, read_release_plan
from cellauto.site.auth import Authenticated
from cellauto.site.roles import Permission
from cellauto.site.run_facts import RunFacts, run_facts
from cellauto.web.acts import signed_act
from cellauto.web.context import Ctx
from cellauto.web.errors import status_of
from cellauto.web.routes.qa_common import may, parse_form, resolve_run
from cellauto.web.routes_table import RouteSpec

__all__ = ["ROUTES"]


@dataclass(frozen=True)
class PlanLine:
    """One release test of the plan and its results (newest last)."""

    test: ReleaseTest
    spec: str
    results: list[tuple[QcRow, str]]
    """Each result with its value as compared with the spec."""


class InvalidateForm(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    cause: str = Field(min_length=10, max_length=4000)
    deviation_id: str | None = None


def _plan_lines(conn: Conn, run_id: str) -> list[PlanLine] | None:
    plan = read_release_plan(conn, run_id)
    if plan is None:
        return None
    confirm_run_review(conn, run_id)  # nothing is shown from an edited row
    results = read_qc_results(conn, run_id)
    return [
        PlanLine(
            test=test,
            spec=test.spec.describe(),
            results=[(row, shown_result(row)) for row in results if row.test == test.name],
        )
        for test in plan.tests
    ]


def _runs_with_plans(conn: Conn) -> list[RunFacts]:
    ids = [
        row[0]
        for row in conn.execute(
            "SELECT run_id FROM records WHERE kind = 'release_plan' ORDER BY wall_time_ns"
        )
    ]
    return [facts for facts in map(lambda r: run_facts(conn, r), ids) if facts is not None]


async def qc_page(
    ctx: Ctx, *, run: str | None = None, status: int = 200, refusal: str = ""
) -> Response:
    given = run or ctx.request.query_params.get("run", "").strip() or None

    def read(journal: Journal) -> dict[str, Any]:
        conn = journal.read_connection()
        if given is None:
            return {"run": None, "runs": _runs_with_plans(conn), "lines": None}
        run_id = resolve_run(journal, given)
        return {"run": run_facts(conn, run_id), "runs": [], "lines": _plan_lines(conn, run_id)}

    values = await ctx.read(read)
    return await ctx.page(
        "qc.html", status, may=may(ctx.me), refusal=refusal, form=ctx.form, **values
    )


async def enter(ctx: Ctx) -> Response:
    run_id = ctx.param("run_id")
    try:
        entry = parse_form(QcResultInput, ctx.form, "QC result")
    except BadInputError as exc:
        return await qc_page(ctx, run=run_id, status=422, refusal=str(exc))
    reason = ctx.form.get("reason", "").strip()

    def act(store: SiteStore, who: Authenticated) -> QcAct:
        return add_result(store, who, run_id, entry, reason=reason)

    try:
        done = await signed_act(ctx, f"qc add {run_id} {entry.test}", act)
    except CellautoError as exc:
        return await qc_page(ctx, run=run_id, status=status_of(exc), refusal=str(exc))
    oos = f"; out of specification: {done.deviation_id} opened" if done.deviation_id else ""
    return ctx.redirect(
        f"/qa/qc?run={run_id}",
        flash=f"{done.result_id} entered by {ctx.me.account}: {done.verdict}{oos}",
    )


async def _run_of(ctx: Ctx, result_id: str) -> str | None:
    def read(journal: Journal) -> str | None:
        try:
            row = (
                journal.read_connection()
                .execute("SELECT run_id FROM qc_results WHERE result_id = ?", (result_id,))
                .fetchone()
            )
        except sqlite3.OperationalError:  # a journal older than QC results
            return None
        return None if row is None else str(row[0])

    return await ctx.read(read)


async def _result_act(ctx: Ctx, what: str, act: Any, done: str) -> Response:
    result_id = ctx.param("result_id")
    run_id = await _run_of(ctx, result_id)
    try:
        await signed_act(ctx, f"{what} {result_id}", act)
    except CellautoError as exc:
        return await qc_page(ctx, run=run_id, status=status_of(exc), refusal=str(exc))
    return ctx.redirect(f"/qa/qc?run={run_id}", flash=f"{result_id} {done} by {ctx.me.account}")


async def verify(ctx: Ctx) -> Response:
    def act(store: SiteStore, who: Authenticated) -> Signed:
        return verify_result(store, who, ctx.param("result_id"))

    return await _result_act(ctx, "qc verify", act, "verified")


async def invalidate(ctx: Ctx) -> Response:
    try:
        form = parse_form(InvalidateForm, ctx.form, "invalidation")
    except BadInputError as exc:
        run_id = await _run_of(ctx, ctx.param("result_id"))
        return await qc_page(ctx, run=run_id, status=422, refusal=str(exc))

    def act(store: SiteStore, who: Authenticated) -> Signed:
        return invalidate_result(
            store, who, ctx.param("result_id"), cause=form.cause, deviation_id=form.deviation_id
        )

    return await _result_act(ctx, "qc invalidate", act, "invalidated")


ROUTES = (
    RouteSpec("/qa/qc", "GET", qc_page, "session"),
    RouteSpec("/runs/{run_id}/qc", "POST", enter, Permission.QC_ENTER, "enter QC results"),
    RouteSpec(
        "/qa/qc/{result_id}/verify", "POST", verify, Permission.QC_VERIFY, "verify QC results"
    ),
    RouteSpec(
        "/qa/qc/{result_id}/invalidate",
        "POST",
        invalidate,
        Permission.QC_INVALIDATE,
        "invalidate QC results",
    ),
)
