"""What the QA pages share: forms read into pydantic models, the permissions a person
holds (to show only the forms they may use; the server checks again), times in words,
and a run named in a path resolved to its id."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from cellauto.errors import BadInputError
from cellauto.records import Journal
from cellauto.site.roles import Role, permissions_of
from cellauto.web.sessions import WebSession

__all__ = ["may", "parse_form", "resolve_run", "shown_time"]

M = TypeVar("M", bound=BaseModel)


def parse_form(model: type[M], form: Mapping[str, str], what: str) -> M:
    """The form's fields as ``model`` (an empty field counts as not given); bad input is
    a :class:`BadInputError` naming each field (nothing is signed or written)."""
    given = {
        name: value.strip()
        for name, value in form.items()
        if name in model.model_fields and value.strip()
    }
    try:
        return model.model_validate(given)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'form'}: {e['msg']}" for e in exc.errors()
        )
        raise BadInputError(f"{what}: {problems}; nothing was signed or written") from None


def may(me: WebSession) -> frozenset[str]:
    """The permissions (their values) ``me`` holds: which forms a page shows them. An
    administrator acts on no batch. The route table is what the server enforces."""
    if Role.ADMINISTRATOR.value in me.roles:
        return frozenset()
    return frozenset(p.value for p in permissions_of(me.roles))


def shown_time(wall_ns: int | None) -> str:
    """``2026-01-20 09:30 UTC``, or an empty string."""
    if wall_ns is None:
        return ""
    return datetime.fromtimestamp(wall_ns / 1e9, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def resolve_run(journal: Journal, given: str) -> str:
    """The run id ``given`` names (the id, or a unique prefix); RunNotFoundError (404)."""
    return journal.resolve_run_id(given)
