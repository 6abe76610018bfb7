"""The run page: timeline, checks, plots, instrument I/O, and the ISA-88 commands."""

from __future__ import annotations

from cellauto.web.routes_table import RouteSpec

ROUTES: tuple[RouteSpec, ...] = ()
