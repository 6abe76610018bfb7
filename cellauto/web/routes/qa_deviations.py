"""Deviations in the browser: the site's list, one deviation's history and the forms its
state allows (classify, investigate, close, withdraw), and raising one on a run.

Each act is the review workflow's own function (:mod:`cellauto.review.deviations`),
signed with the password again (:func:`~cellauto.web.acts.signed_act`); its refusals
(the state, segregation of duties, the CAPA rule) are journaled by that function and
shown on the page with their status (:func:`~cellauto.web.errors.status_of`).
Evidence of an investigation is typed as name, SHA-256 and size: nothing is uploaded.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import Response

from cellauto.errors import BadInputError, CellautoError
from cellauto.records import Journal
from cellauto.records.site_payloads_review import (
    Classification,
    Evidence,
    ProductImpact,
    RootCauseCategory,
)
from cellauto.records.site_store import SiteStore
from cellauto.review.deviations import (
    DeviationAct,
    classify_deviation,
    close_deviation,
    investigate_deviation,
    raise_deviation,
    withdraw_deviation,
)
from cellauto.review.read import read_deviation
from cellauto.site.auth import Authenticated
from cellauto.site.roles import Permission
from cellauto.web.acts import signed_act
from cellauto.web.context import Ctx
from cellauto.web.errors import status_of
from cellauto.web.routes.qa_common import may, parse_form, resolve_run
from cellauto.web.routes.qa_deviation_views import (
    allowed_acts,
    deviation_lines,
    history,
    plan_steps,
    run_header,
)
from cellauto.web.routes_table import RouteSpec

__all__ = ["EVIDENCE_ROWS", "ROUTES"]

EVIDENCE_ROWS = 3
"""Evidence documents one investigation form names (an amendment may add more)."""


class _Form(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RaiseForm(_Form):
    title: str = Field(min_length=5, max_length=120)
    description: str = Field(min_length=10, max_length=4000)
    step: str | None = None
    hold: bool = False


class ClassifyForm(_Form):
    classification: Classification
    impact_assessment: str = Field(min_length=10, max_length=4000)
    other_batches: str = ""
    reason: str = ""


class InvestigateForm(_Form):
    root_cause: str = Field(min_length=10, max_length=4000)
    category: RootCauseCategory
    product_impact: ProductImpact
    impact_detail: str = Field(min_length=10, max_length=4000)
    reason: str = ""


class CloseForm(_Form):
    conclusion: str = Field(min_length=10, max_length=4000)
    capa: str | None = None
    no_capa_reason: str | None = None
    reason: str = ""


class WithdrawForm(_Form):
    cause: str = Field(min_length=10, max_length=4000)


def typed_evidence(form: dict[str, str]) -> list[Evidence]:
    """The evidence rows of an investigation form (``evidence_name_1``,
    ``evidence_sha256_1``, ``evidence_size_1``, ...): a row is all three or none."""
    found: list[Evidence] = []
    for n in range(1, EVIDENCE_ROWS + 1):
        parts = [
            form.get(f"evidence_{part}_{n}", "").strip() for part in ("name", "sha256", "size")
        ]
        if not any(parts):
            continue
        name, sha256, size = parts
        if not all(parts) or not size.isdigit():
            raise BadInputError(
                f"evidence {n}: give its name, SHA-256 and size in bytes (all three); nothing"
                " was signed or written"
            )
        try:
            found.append(Evidence(name=name, sha256=sha256.lower(), size_bytes=int(size)))
        except ValidationError as exc:
            problems = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())
            raise BadInputError(
                f"evidence {n} ({name}): {problems} (a SHA-256 is 64 hexadecimal digits);"
                " nothing was signed or written"
            ) from None
    return found


# -- pages --------------------------------------------------------------------------------
async def deviations_page(ctx: Ctx, *, status: int = 200, refusal: str = "") -> Response:
    given = ctx.request.query_params.get("run", "").strip() or None
    if given is None and ctx.request.method == "POST":
        given = ctx.param("run_id")

    def read(journal: Journal) -> dict[str, Any]:
        conn = journal.read_connection()
        run_id = None if given is None else resolve_run(journal, given)
        return {
            "lines": deviation_lines(conn, run_id),
            "run": None if run_id is None else run_header(conn, run_id),
            "steps": [] if run_id is None else plan_steps(conn, run_id),
        }

    values = await ctx.read(read)
    return await ctx.page(
        "deviations.html", status, may=may(ctx.me), refusal=refusal, form=ctx.form, **values
    )


async def deviation_page(ctx: Ctx, *, status: int = 200, refusal: str = "") -> Response:
    deviation_id = ctx.param("dev_id")

    def read(journal: Journal) -> dict[str, Any] | None:
        conn = journal.read_connection()
        row = read_deviation(conn, deviation_id)
        if row is None:
            return None
        return {
            "row": row,
            "history": history(conn, row),
            "allowed": allowed_acts(row),
            "run": run_header(conn, row.run_id),
        }

    values = await ctx.read(read)
    if values is None:
        return await ctx.refuse(404, f"no deviation {deviation_id}; the Deviations page lists them")
    return await ctx.page(
        "deviation.html",
        status,
        may=may(ctx.me),
        refusal=refusal,
        form=ctx.form,
        evidence_rows=range(1, EVIDENCE_ROWS + 1),
        **values,
    )


# -- acts ---------------------------------------------------------------------------------
async def _deviation_act(ctx: Ctx, what: str, act: Any, done: str) -> Response:
    """Sign and run ``act(store, who)`` on the deviation of the path; the page again with
    the refusal and its status when refused."""
    deviation_id = ctx.param("dev_id")
    try:
        await signed_act(ctx, f"{what} {deviation_id}", act)
    except CellautoError as exc:
        return await deviation_page(ctx, status=status_of(exc), refusal=str(exc))
    return ctx.redirect(f"/qa/deviations/{deviation_id}", flash=f"{deviation_id} {done}")


async def classify(ctx: Ctx) -> Response:
    try:
        form = parse_form(ClassifyForm, ctx.form, "classification")
    except BadInputError as exc:
        return await deviation_page(ctx, status=422, refusal=str(exc))

    def act(store: SiteStore, who: Authenticated) -> DeviationAct:
        return classify_deviation(
            store,
            who,
            ctx.param("dev_id"),
            classification=form.classification,
            impact_assessment=form.impact_assessment,
            other_batches=form.other_batches.split(),
            reason=form.reason,
        )

    return await _deviation_act(
        ctx, "classify", act, f"classified {form.classification.value} by {ctx.me.account}"
    )


async def investigate(ctx: Ctx) -> Response:
    try:
        form = parse_form(InvestigateForm, ctx.form, "investigation")
        evidence = typed_evidence(ctx.form)
    except BadInputError as exc:
        return await deviation_page(ctx, status=422, refusal=str(exc))

    def act(store: SiteStore, who: Authenticated) -> DeviationAct:
        return investigate_deviation(
            store,
            who,
            ctx.param("dev_id"),
            root_cause=form.root_cause,
            category=form.category,
            product_impact=form.product_impact,
            impact_detail=form.impact_detail,
            evidence=evidence,
            reason=form.reason,
        )

    return await _deviation_act(ctx, "investigate", act, f"investigated by {ctx.me.account}")


async def close(ctx: Ctx) -> Response:
    try:
        form = parse_form(CloseForm, ctx.form, "closure")
    except BadInputError as exc:
        return await deviation_page(ctx, status=422, refusal=str(exc))

    def act(store: SiteStore, who: Authenticated) -> DeviationAct:
        return close_deviation(
            store,
            who,
            ctx.param("dev_id"),
            conclusion=form.conclusion,
            capa=form.capa,
            no_capa_reason=form.no_capa_reason,
            reason=form.reason,
        )

    return await _deviation_act(ctx, "close", act, f"closed by {ctx.me.account}")


async def withdraw(ctx: Ctx) -> Response:
    try:
        form = parse_form(WithdrawForm, ctx.form, "withdrawal")
    except BadInputError as exc:
        return await deviation_page(ctx, status=422, refusal=str(exc))

    def act(store: SiteStore, who: Authenticated) -> DeviationAct:
        return withdraw_deviation(store, who, ctx.param("dev_id"), cause=form.cause)

    return await _deviation_act(ctx, "withdraw", act, f"withdrawn by {ctx.me.account}")


async def raise_on_run(ctx: Ctx) -> Response:
    run_id = ctx.param("run_id")
    try:
        form = parse_form(RaiseForm, ctx.form, "deviation")
    except BadInputError as exc:
        return await deviations_page(ctx, status=422, refusal=str(exc))

    def act(store: SiteStore, who: Authenticated) -> DeviationAct:
        return raise_deviation(
            store,
            who,
            run_id,
            title=form.title,
            description=form.description,
            step=form.step,
            hold=form.hold,
        )

    try:
        done = await signed_act(ctx, f"raise a deviation on run {run_id}", act)
    except CellautoError as exc:
        return await deviations_page(ctx, status=status_of(exc), refusal=str(exc))
    held = "; a Hold of the run was requested" if done.hold is not None else ""
    return ctx.redirect(
        f"/qa/deviations/{done.deviation_id}",
        flash=f"{done.deviation_id} raised by {ctx.me.account}{held}",
    )


ROUTES = (
    RouteSpec("/qa/deviations", "GET", deviations_page, "session"),
    RouteSpec("/qa/deviations/{dev_id}", "GET", deviation_page, "session"),
    RouteSpec(
        "/qa/deviations/{dev_id}/classify",
        "POST",
        classify,
        Permission.DEVIATION_CLASSIFY,
        "classify deviations",
    ),
    RouteSpec(
        "/qa/deviations/{dev_id}/investigate",
        "POST",
        investigate,
        Permission.DEVIATION_INVESTIGATE,
        "investigate deviations",
    ),
    RouteSpec(
        "/qa/deviations/{dev_id}/close",
        "POST",
        close,
        Permission.DEVIATION_CLOSE,
        "close deviations",
    ),
    RouteSpec(
        "/qa/deviations/{dev_id}/withdraw",
        "POST",
        withdraw,
        Permission.DEVIATION_CLOSE,
        "withdraw deviations",
    ),
    RouteSpec(
        "/runs/{run_id}/deviations",
        "POST",
        raise_on_run,
        Permission.DEVIATION_RAISE,
        "raise deviations",
    ),
)
