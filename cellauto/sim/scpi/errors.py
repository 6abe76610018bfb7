"""SCPI error codes of the simulated instruments (docs/scpi.md, "Error codes")."""

from __future__ import annotations

import re

__all__ = ["ERROR_TEXT", "ScpiError", "error_entry"]

#: Standard (negative) and device-specific (positive) codes with their fixed text.
ERROR_TEXT: dict[int, str] = {
    0: "No error",
    -100: "Command error",
    -102: "Syntax error",
    -104: "Data type error",
    -108: "Parameter not allowed",
    -109: "Missing parameter",
    -113: "Undefined header",
    -200: "Execution error",
    -221: "Settings conflict",
    -222: "Data out of range",
    -224: "Illegal parameter value",
    -350: "Queue overflow",
    100: "Instrument fault",
    101: "Operation in progress",
    102: "No result available",
    110: "Sample not found",
    111: "No sample selected",
    112: "Count failed",
    120: "No profile loaded",
    121: "Container not found",
}

#: Longest description an error entry carries (IEEE 488.2 / SCPI-99: 255 characters).
MAX_DESCRIPTION = 255
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ScpiError(Exception):
    """Raised by a command handler: becomes one entry of the error queue."""

    def __init__(self, code: int, detail: str = "") -> None:
        if code not in ERROR_TEXT:
            raise ValueError(f"undocumented SCPI error code {code}")
        self.code = code
        self.detail = detail
        super().__init__(error_entry(code, detail)[1])


def error_entry(code: int, detail: str = "") -> tuple[int, str]:
    """``(code, description)`` with the detail after ``;``, one line, at most 255 chars."""
    text = ERROR_TEXT[code]
    if detail:
        text = f"{text}; {_CONTROL.sub(' ', detail)}"
    if len(text) > MAX_DESCRIPTION:
        text = text[: MAX_DESCRIPTION - 3] + "..."
    return code, text
