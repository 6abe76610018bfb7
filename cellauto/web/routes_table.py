"""Every route of the web app, and who may use it: the app is built from this table only.

``access`` is ``"public"`` (the sign-in page alone), ``"session"`` (any signed-in
person: reading is open to every account, §8 of the web design), a :class:`Permission`
the person must hold now, or an async function of the request that names the permission
(an operator task is answered with its own). Every POST needs its session's CSRF token
and must come from this server's page; a POST's permission is checked, and a refusal
journaled, before its handler reads a password. A hidden button is not a permission:
the table is what the server enforces, and tests/web walk it route by route.

Each page family declares its routes in its own module under ``routes/``; this module
only gathers them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from starlette.responses import Response

from cellauto.site.roles import Permission
from cellauto.web.context import Ctx

__all__ = ["Access", "Handler", "RouteSpec", "all_routes"]

Handler = Callable[[Ctx], Awaitable[Response]]
Access = Permission | Literal["public", "session"] | Callable[[Ctx], Awaitable[Permission]]


@dataclass(frozen=True)
class RouteSpec:
    """One route: its path (Starlette syntax), method, handler and who may use it.
    ``doing`` says in words what the permission allows ("release batches"), for the
    refusal; ``background``: fetched by the page's script, so it does not count as the
    person using the session (the idle timeout)."""

    path: str
    method: Literal["GET", "POST"]
    handler: Handler
    access: Access
    doing: str = ""
    background: bool = False


def all_routes() -> tuple[RouteSpec, ...]:
    """Every route of the app, in matching order."""
    from cellauto.web.routes import alarms, auth, line, qa, runs, tasks

    return (*auth.ROUTES, *line.ROUTES, *runs.ROUTES, *tasks.ROUTES, *alarms.ROUTES, *qa.ROUTES)
