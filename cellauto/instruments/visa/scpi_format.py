"""SCPI data as text: what the adapters send and what the simulated instruments answer.

The inverse of :mod:`cellauto.instruments.visa.scpi_reply`: a number is written with
Python's shortest round-trip form (so the reader gets the very same float), a missing
value as SCPI's not-a-number ``9.91E+37``, a string double-quoted with ``""`` for a
quote inside. Text that cannot travel on one line (control characters) is refused.
"""

from __future__ import annotations

import math
import re

from cellauto.errors import BadInputError

__all__ = ["NOT_A_NUMBER_TEXT", "format_bool", "format_optional_real", "format_real", "quote"]

#: SCPI's not-a-number, the reply for a value that does not exist.
NOT_A_NUMBER_TEXT = "9.91E+37"

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def format_real(value: float, *, field: str = "value") -> str:
    """A finite number, exactly (``repr`` round-trips every float)."""
    if not math.isfinite(value):
        raise BadInputError(f"{field} must be a finite number, not {value!r}")
    return repr(float(value))


def format_optional_real(value: float | None, *, field: str = "value") -> str:
    """A number, or ``9.91E+37`` for None."""
    return NOT_A_NUMBER_TEXT if value is None else format_real(value, field=field)


def format_bool(value: bool) -> str:
    return "1" if value else "0"


def quote(text: str, *, field: str = "text") -> str:
    """``text`` as SCPI string data; control characters (newline, tab ...) are refused."""
    if (bad := _CONTROL.search(text)) is not None:
        raise BadInputError(
            f"{field} {text!r} cannot be sent to an instrument: it contains the control "
            f"character {bad.group()!r}; use printable characters only"
        )
    return '"' + text.replace('"', '""') + '"'
