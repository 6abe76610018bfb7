"""The line overview: every run at a glance."""

from __future__ import annotations

from starlette.responses import Response

from cellauto.records import Journal
from cellauto.records.models import RunSummary
from cellauto.web.context import Ctx
from cellauto.web.routes_table import RouteSpec

__all__ = ["ROUTES"]


async def overview(ctx: Ctx) -> Response:
    def runs(journal: Journal) -> list[RunSummary]:
        return journal.runs()

    return await ctx.page("overview.html", runs=await ctx.read(runs))


ROUTES = (RouteSpec("/", "GET", overview, "session"),)
