"""QA: deviations, QC results, the batch record and the release decision."""

from __future__ import annotations

from cellauto.web.routes_table import RouteSpec

ROUTES: tuple[RouteSpec, ...] = ()
