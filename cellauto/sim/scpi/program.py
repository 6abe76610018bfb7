"""Program messages as the simulated instruments read them: units, headers, parameters.

A line holds one or more program message units separated by ``;``; each is a header
(long or short form, any case, an optional leading ``:``; each unit starts again from
the root) and comma-separated parameters after white space. Semicolons and commas
inside double-quoted strings are data.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from cellauto.instruments.visa.errors import ScpiReplyError
from cellauto.instruments.visa.scpi_reply import parse_int, parse_real, parse_string
from cellauto.sim.scpi.errors import ScpiError

__all__ = ["Args", "Handler", "HeaderTable", "Unit", "split_message"]

T = TypeVar("T")


@dataclass(frozen=True)
class Args:
    """The parameters of one unit, with typed accessors that raise the right SCPI error."""

    header: str
    params: tuple[str, ...]

    def expect(self, low: int, high: int | None = None) -> None:
        """Between ``low`` and ``high`` (default: exactly ``low``) parameters."""
        high = low if high is None else high
        if len(self.params) < low:
            raise ScpiError(-109, f"{self.header} takes {low} parameter(s)")
        if len(self.params) > high:
            raise ScpiError(-108, f"{self.header} takes at most {high} parameter(s)")

    def real(self, index: int, name: str) -> float:
        return self._parse(index, name, parse_real, "a number")

    def integer(self, index: int, name: str) -> int:
        return self._parse(index, name, parse_int, "an integer")

    def string(self, index: int, name: str) -> str:
        return self._parse(index, name, parse_string, 'a "quoted string"')

    def _parse(self, index: int, name: str, parse: Callable[[str], T], kind: str) -> T:
        try:
            return parse(self.params[index])
        except ScpiReplyError:
            raise ScpiError(
                -104, f"{self.header}: {name} must be {kind}, not {self.params[index]!r}"
            ) from None


Handler = Callable[[Args], Awaitable[str | None]]


@dataclass(frozen=True)
class Unit:
    header: str
    args: Args

    @property
    def is_query(self) -> bool:
        return self.header.endswith("?")


def split_message(line: str) -> list[Unit]:
    """The units of one line; ScpiError(-102) for an unterminated string."""
    units = []
    for text in _split_outside_quotes(line, ";"):
        text = text.strip()
        if not text:
            continue
        header, _, rest = text.partition(" ")
        if "\t" in header:
            header, _, more = header.partition("\t")
            rest = f"{more} {rest}"
        rest = rest.strip()
        params = tuple(p.strip() for p in _split_outside_quotes(rest, ",")) if rest else ()
        if any(not p for p in params):
            raise ScpiError(-102, f"empty parameter in {text!r}")
        units.append(Unit(header, Args(header, params)))
    return units


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    if '"' not in text:
        return text.split(separator)
    parts, start, quoted = [], 0, False
    for index, char in enumerate(text):
        if char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append(text[start:index])
            start = index + 1
    if quoted:
        raise ScpiError(-102, f"unterminated string in {text!r}")
    parts.append(text[start:])
    return parts


class HeaderTable:
    """Headers in SCPI notation (``MEASure:TEMPerature:CHAMber?``) to handlers.

    The upper-case letters of each node are its short form; either form is accepted
    in any case. All spellings are expanded once, so a lookup is one dict access.
    """

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self.patterns: list[str] = []

    def add(self, pattern: str, handler: Handler) -> None:
        self.patterns.append(pattern)
        query = pattern.endswith("?")
        spellings = [""]
        for node in pattern.rstrip("?").split(":"):
            forms = {node.upper()} if node.startswith("*") else _forms(node)
            spellings = [f"{s}:{f}" if s else f for s in spellings for f in forms]
        for spelling in spellings:
            key = spelling + ("?" if query else "")
            if key in self._handlers:
                raise ValueError(f"SCPI header {pattern!r} clashes with another ({key})")
            self._handlers[key] = handler

    def lookup(self, header: str) -> Handler:
        handler = self._handlers.get(header.upper().removeprefix(":"))
        if handler is None:
            raise ScpiError(-113, header)
        return handler


def _forms(node: str) -> set[str]:
    short = "".join(ch for ch in node if ch.isupper() or ch.isdigit())
    return {short, node.upper()}
