"""The base of every run record payload, and the rule for values recorded as plain JSON.

Its own module so that the payload models of one concern (operator tasks,
:mod:`cellauto.records.task_payloads`) can build on it while
:mod:`cellauto.records.payloads` lists them all in ``PAYLOAD_TYPES``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from cellauto.records.kinds import RecordKind

__all__ = ["FROZEN", "Payload", "plain_json"]

FROZEN = ConfigDict(frozen=True, extra="forbid")


class Payload(BaseModel):
    """Base of every record payload; ``kind`` is the record kind it is written as."""

    model_config = FROZEN
    kind: ClassVar[RecordKind]

    def verdict_problem(self) -> str | None:
        """Why a stored verdict disagrees with the one recomputed from the record; or None."""
        return None


def plain_json(value: Any, where: str = "value") -> Any:
    """``value`` if it reads back from the journal as itself; else ValueError naming why.

    A resumed step gets its batch values and checkpoints back from the journal, so they
    must be JSON as it is: None, bool, int, str, finite float, lists, str-keyed objects.
    (NaN would come back as the text "NaN", a tuple as a list, a datetime as a string.)
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(
                f"{where} is {value!r}; record a finite number (or None when there is none)"
            )
        return value
    if isinstance(value, list):
        for i, item in enumerate(value):
            plain_json(item, f"{where}[{i}]")
        return value
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where} has the key {key!r}; keys must be strings")
            plain_json(item, f"{where}[{key!r}]")
        return value
    raise ValueError(
        f"{where} is a {type(value).__name__}, which would read back as something else; "
        "record None, a bool, a number, a string, or lists and objects of them"
    )
