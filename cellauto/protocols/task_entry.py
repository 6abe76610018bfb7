"""What an operator task is called and what its entry may be.

A task's id is derived from where it is asked, so that a step run again after a
controller crash asks for the same task; an entered value is taken only as the
task's type (a value refused here is refused before anything is signed).
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any

import orjson

from cellauto.errors import BadInputError
from cellauto.records import payloads as rec

__all__ = ["coerced", "task_id_for"]

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def task_id_for(
    run_id: str, step: str | None, name: str, key: str | None, attempt: int, *, length: int = 8
) -> str:
    """The task's id: ``length`` Crockford base32 characters of a SHA-256 of where it is
    asked (run, step, name, key, attempt); the same after a controller crash."""
    digest = hashlib.sha256(orjson.dumps([run_id, step, name, key, attempt])).digest()
    number = int.from_bytes(digest[:8], "big") >> (64 - 5 * length)
    return "".join(_CROCKFORD[(number >> (5 * i)) & 31] for i in reversed(range(length)))


_TRUE = {"y", "yes", "true", "1"}
_FALSE = {"n", "no", "false", "0"}


def coerced(task: rec.TaskOpened, value: Any) -> Any:
    """The value as the task's type; BadInputError naming why if it is not one."""
    summary = task.summary
    where = f"task {task.task_id} ({task.name})"
    if summary.what == "confirm":
        return None
    kind = summary.value_type
    try:
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE | _FALSE:
                return text in _TRUE
            raise ValueError("yes or no")
        if kind in ("float", "int"):
            if isinstance(value, bool):
                raise ValueError("a number")
            if kind == "int":
                return int(str(value).strip())
            number = float(value)
            if not math.isfinite(number):
                raise ValueError("a finite number")
            return number
        if not isinstance(value, str):
            raise ValueError("a text")
        text = value
        if summary.pattern is not None and re.fullmatch(summary.pattern, text) is None:
            raise ValueError(f"a text matching {summary.pattern}")
        if summary.choices is not None and text not in summary.choices:
            raise ValueError("one of " + ", ".join(summary.choices))
        return text
    except (ValueError, TypeError) as exc:
        wanted = str(exc) if not str(exc).startswith(("could not", "invalid")) else kind
        raise BadInputError(f"{where}: {value!r} is not {wanted}; enter it again") from None
