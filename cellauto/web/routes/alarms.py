"""The alarms of the line, acknowledged with a comment."""

from __future__ import annotations

from cellauto.web.routes_table import RouteSpec

ROUTES: tuple[RouteSpec, ...] = ()
