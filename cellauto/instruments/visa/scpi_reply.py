"""A strict parser of SCPI response messages (IEEE 488.2 response data, docs/scpi.md).

Every function either returns exactly the value the text encodes or raises
:class:`ScpiReplyError` quoting the reply. Nothing is guessed: no stripping of stray
characters, no partial numbers, no "first field of a longer record". A reply line is
UTF-8 text without control characters, terminated by one ``\\n``; strings (the only
place non-ASCII may appear) are double-quoted with ``""`` for a quote inside.

Numbers are NR1 (``-12``), NR2 (``-12.5``) or NR3 (``-1.25E+01``). SCPI's special
values 9.9E37 (+infinity), -9.9E37 and 9.91E37 (not a number) are refused unless the
field allows "no value" (:func:`parse_optional_real`: 9.91E37 means None); a number
that overflows a float is refused.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Sequence
from typing import Any, TypeVar

from cellauto.instruments.visa.errors import ScpiReplyError

__all__ = [
    "NOT_A_NUMBER",
    "ScpiReplyError",
    "parse_bool",
    "parse_counted",
    "parse_error_entry",
    "parse_idn",
    "parse_int",
    "parse_mnemonic",
    "parse_optional_real",
    "parse_real",
    "parse_record",
    "parse_string",
    "reply_text",
    "split_fields",
]

T = TypeVar("T")

#: SCPI's "not a number": a field with no value (e.g. no phase change detected).
NOT_A_NUMBER = 9.91e37
#: Magnitudes from here on are SCPI's infinities / not-a-number, never measurements.
_SPECIAL_MAGNITUDE = 9.9e37
#: A reply longer than this is refused unread (no instrument here sends one).
MAX_REPLY_BYTES = 65_536
_MAX_NUMBER_CHARS = 64

_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def reply_text(raw: bytes) -> str:
    """The text of one complete reply line (without its ``\\n``), or ScpiReplyError."""
    if len(raw) > MAX_REPLY_BYTES:
        raise ScpiReplyError(f"longer than {MAX_REPLY_BYTES} bytes", raw)
    if not raw.endswith(b"\n"):
        raise ScpiReplyError("partial reply: no terminating newline", raw)
    body = raw[:-1]
    if b"\n" in body:
        raise ScpiReplyError("more than one line", raw)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScpiReplyError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", raw) from None
    if (bad := _CONTROL.search(text)) is not None:
        raise ScpiReplyError(f"control character {bad.group()!r} at {bad.start()}", raw)
    return text


def parse_real(text: str) -> float:
    """An NR1/NR2/NR3 number as a finite float."""
    value = _number(text)
    if abs(value) >= _SPECIAL_MAGNITUDE:
        raise ScpiReplyError("SCPI infinity or not-a-number where a value is required", text)
    return value


def parse_optional_real(text: str) -> float | None:
    """A number, or None for SCPI's not-a-number 9.91E37 (no value)."""
    value = _number(text)
    if value == NOT_A_NUMBER:
        return None
    if abs(value) >= _SPECIAL_MAGNITUDE:
        raise ScpiReplyError("SCPI infinity where a value or 9.91E+37 is expected", text)
    return value


def _number(text: str) -> float:
    if len(text) > _MAX_NUMBER_CHARS:
        raise ScpiReplyError(f"a number of more than {_MAX_NUMBER_CHARS} characters", text)
    if _NUMBER.fullmatch(text) is None:
        raise ScpiReplyError("not an NR1/NR2/NR3 number", text)
    value = float(text)
    if not math.isfinite(value):
        raise ScpiReplyError("number outside the range of a float", text)
    return value


def parse_int(text: str) -> int:
    """An NR1 integer."""
    if len(text) > _MAX_NUMBER_CHARS or _INTEGER.fullmatch(text) is None:
        raise ScpiReplyError("not an NR1 integer", text)
    return int(text)


def parse_bool(text: str) -> bool:
    """``0`` or ``1``."""
    if text == "1":
        return True
    if text == "0":
        return False
    raise ScpiReplyError("not a boolean 0 or 1", text)


def parse_string(text: str) -> str:
    """A double-quoted string, ``""`` standing for one quote inside."""
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        raise ScpiReplyError("not a double-quoted string", text)
    inner = text[1:-1]
    if inner.replace('""', "").count('"'):
        raise ScpiReplyError('a lone quote inside a string (write "" for a quote)', text)
    return inner.replace('""', '"')


def parse_mnemonic(text: str, allowed: Collection[str]) -> str:
    """One of the ``allowed`` character-response mnemonics, exactly."""
    if text not in allowed:
        raise ScpiReplyError(f"not one of {', '.join(sorted(allowed))}", text)
    return text


def split_fields(text: str) -> list[str]:
    """Comma-separated fields, commas inside double-quoted strings kept."""
    if '"' not in text:
        return text.split(",")
    fields: list[str] = []
    start, quoted = 0, False
    for index, char in enumerate(text):
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            fields.append(text[start:index])
            start = index + 1
    if quoted:
        raise ScpiReplyError("unterminated string", text)
    fields.append(text[start:])
    return fields


def parse_record(text: str, parsers: Sequence[Callable[[str], Any]]) -> list[Any]:
    """Exactly ``len(parsers)`` fields, each parsed by its parser."""
    fields = split_fields(text)
    if len(fields) != len(parsers):
        raise ScpiReplyError(f"{len(fields)} fields where {len(parsers)} are expected", text)
    pairs = zip(parsers, fields, strict=True)
    return [_field(text, index, parse, field) for index, (parse, field) in enumerate(pairs)]


def parse_counted(
    text: str, head: Sequence[Callable[[str], Any]], item: Callable[[str], T]
) -> tuple[list[Any], list[T]]:
    """Fixed ``head`` fields, then ``<n>`` and exactly n items: ``(head values, items)``."""
    fields = split_fields(text)
    fixed = len(head) + 1
    if len(fields) < fixed:
        raise ScpiReplyError(f"{len(fields)} fields where at least {fixed} are expected", text)
    values = [_field(text, index, parse, fields[index]) for index, parse in enumerate(head)]
    count = _field(text, len(head), parse_int, fields[len(head)])
    if count < 0 or len(fields) != fixed + count:
        raise ScpiReplyError(
            f"the list announces {count} items but {len(fields) - fixed} follow", text
        )
    items = [_field(text, fixed + i, item, field) for i, field in enumerate(fields[fixed:])]
    return values, items


def _field(text: str, index: int, parse: Callable[[str], T], field: str) -> T:
    try:
        return parse(field)
    except ScpiReplyError as exc:
        raise ScpiReplyError(f"field {index + 1}: {exc.problem} ({field!r})", text) from None


def parse_error_entry(text: str) -> tuple[int, str]:
    """One ``SYST:ERR?`` entry: ``<code>,"<description>"``."""
    code, description = parse_record(text, (parse_int, parse_string))
    return code, description


def parse_idn(text: str) -> tuple[str, str, str, str]:
    """``*IDN?``: vendor, model, serial and firmware, four non-empty fields."""
    fields = text.split(",")
    if len(fields) != 4 or not all(fields) or any(f != f.strip() for f in fields):
        raise ScpiReplyError("not vendor,model,serial,firmware (four non-empty fields)", text)
    vendor, model, serial, firmware = fields
    return vendor, model, serial, firmware
