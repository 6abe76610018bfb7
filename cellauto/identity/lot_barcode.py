"""A material lot's barcode, as scanned off a vial or bag at the point of use.

Two forms are accepted:

- a Code 128 of the lot id itself (``il2/L1``), as the site prints on what it receives;
- a GS1 element string carrying the lot in application identifier (10), as a supplier
  prints it: read with its symbology identifier and FNC1 separators
  (``]C1010761234567890010A1234`` + ``\\x1d`` + ...), or as its human-readable text
  ``(01)07612345678900(10)A1234``.

Anything else (an ISBT 128 DIN, a GS1 string without (10), an AI this module does not
know the length of, characters a lot id cannot hold) is refused with
:class:`LotBarcodeError` naming what was read.
"""

from __future__ import annotations

import re

from cellauto.errors import BadInputError
from cellauto.records.site_payloads_mat import LOT_ID_PATTERN

__all__ = ["LotBarcodeError", "gs1_lot_data", "lot_barcode_data", "parse_lot_barcode"]

GS = "\x1d"
"""FNC1 as a scanner transmits it inside a GS1 element string."""
_GS1_IDENTIFIERS = ("]C1", "]d2", "]Q3", "]e0")
"""AIM symbology identifiers of GS1-128, GS1 DataMatrix, GS1 QR and GS1 DataBar."""
_CODE128_IDENTIFIER = "]C0"
_FIXED = {"00": 18, "01": 14, "02": 14, "11": 6, "12": 6, "13": 6, "15": 6, "16": 6, "17": 6,
          "20": 2}  # fmt: skip
"""AIs of a fixed length (digits after the AI): no FNC1 follows them."""
_VARIABLE = ("10", "21", "22", "30", "37", "240", "241", "250", "251", "400", "90")
"""AIs of a variable length (ended by FNC1 or the end of the data)."""
_HUMAN = re.compile(r"\((\d{2,4})\)([^()]*)")
_LOT = re.compile(LOT_ID_PATTERN)


class LotBarcodeError(BadInputError):
    """A scan that is not a lot barcode this site reads."""


def lot_barcode_data(lot_id: str) -> str:
    """The Code 128 data of ``lot_id``'s barcode (the lot id itself)."""
    _check_lot(lot_id, lot_id)
    return lot_id


def gs1_lot_data(lot_id: str, gtin: str = "07612345678900") -> str:
    """A GS1-128 scan of ``gtin`` and lot ``lot_id``, as a scanner transmits it."""
    return f"]C101{gtin}10{lot_id}"


def parse_lot_barcode(data: str) -> str:
    """The lot id a scan names; :class:`LotBarcodeError` naming what was read if none."""
    text = data.strip()
    if not text:
        raise LotBarcodeError("the scan read nothing: scan the lot barcode of the vial or bag")
    if text.startswith(_GS1_IDENTIFIERS):
        return _check_lot(_gs1_lot(data, text[3:]), data)
    if text.startswith("("):
        fields = _HUMAN.findall(text)
        if not fields or "".join(f"({ai}){value}" for ai, value in fields) != text:
            raise LotBarcodeError(
                f"scanned {data!r}: not a GS1 element string ((AI)value...): scan the lot barcode"
            )
        return _check_lot(_lot_of(dict(fields), data), data)
    text = text.removeprefix(_CODE128_IDENTIFIER)
    if text.startswith(("=", "&", "]")):
        raise LotBarcodeError(
            f"scanned {data!r}: an ISBT 128 or other container barcode, not a lot's: scan the "
            "lot barcode of the material's vial or bag"
        )
    return _check_lot(text, data)


def _gs1_lot(data: str, body: str) -> str:
    fields: dict[str, str] = {}
    rest = body.lstrip(GS)
    while rest:
        ai = next((a for a in (*_FIXED, *_VARIABLE) if rest.startswith(a)), None)
        if ai is None:
            raise LotBarcodeError(
                f"scanned {data!r}: GS1 application identifier at {rest[:4]!r} is not one this "
                "site reads: scan the lot barcode ((10) lot) of the vial or bag"
            )
        if ai in _FIXED:
            value, rest = rest[len(ai) : len(ai) + _FIXED[ai]], rest[len(ai) + _FIXED[ai] :]
            if len(value) != _FIXED[ai] or not value.isdigit():
                raise LotBarcodeError(
                    f"scanned {data!r}: GS1 ({ai}) needs {_FIXED[ai]} digits, read {value!r}"
                )
        else:
            value, _, rest = rest[len(ai) :].partition(GS)
        fields[ai] = value
        rest = rest.lstrip(GS)
    return _lot_of(fields, data)


def _lot_of(fields: dict[str, str], data: str) -> str:
    if "10" not in fields:
        named = ", ".join(f"({ai})" for ai in fields) or "nothing"
        raise LotBarcodeError(
            f"scanned {data!r}: a GS1 barcode with {named} but no (10) lot: scan the "
            "barcode that carries the lot"
        )
    return fields["10"]


def _check_lot(lot_id: str, data: str) -> str:
    if not _LOT.match(lot_id):
        raise LotBarcodeError(
            f"scanned {data!r}: {lot_id!r} is not a lot id (letters, digits and . _ / -, "
            "at most 80): scan the lot barcode of the vial or bag"
        )
    return lot_id
