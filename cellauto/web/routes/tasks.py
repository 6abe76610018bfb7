"""The operator task inbox: what waits for a person, answered with a signature."""

from __future__ import annotations

from cellauto.web.routes_table import RouteSpec

ROUTES: tuple[RouteSpec, ...] = ()
