"""The site's table of product codes, collection types, divisions and DIN flags.

PLACEHOLDERS: real ISBT 128 product codes are assigned by ICCBBA and looked up in its
product description database, which this project does not have. The codes below are a
site's local stand-ins (``S9xxx`` for in-process containers, ``S1234`` for the final
product), to be replaced by a site's own table; nothing else in cellauto depends on
their values, only on their form ('S' + 4 digits) and on each container type having a
code of its own.

Flags (the 2 characters after the DIN in its barcode): a final product bag carries
``01``-``04`` (container n of a set, at most 4: ISBT's limit); every other container
carries the DIN's check value + 60, so that a DIN typed from it can be checked.
Divisions: ``00`` for a container that is not one of several; ``A0``, ``B0``, ... for
the bags of a set or the samples of one draw.
"""

from __future__ import annotations

import re
import string
from types import MappingProxyType

__all__ = [
    "AUTOLOGOUS",
    "MAX_SET_BAGS",
    "PRODUCT_CODES",
    "division",
    "product_code_for",
    "validate_code",
]

AUTOLOGOUS = "1"
"""Collection type: for autologous use only."""

MAX_SET_BAGS = 4
"""Flags 01-04: at most four final product bags in one set."""

PRODUCT_CODES: MappingProxyType[str, str] = MappingProxyType(
    {
        "apheresis bag": "S9000",
        "selected fraction": "S9001",
        "culture bag": "S9002",
        "washed product": "S9003",
        "QC sample": "S9004",
        "retained sample": "S9005",
        "harvest bag": "S9006",
        "final product": "S1234",
    }
)
"""Container type -> 5-character product code (local placeholders, see the module doc)."""


def validate_code(code: str) -> str:
    """Return a 5-character cellular therapy product code (``S`` + 4 digits), else raise."""
    if not re.fullmatch(r"S[0-9]{4}", code):
        raise ValueError(
            f"{code!r} is not a 5-character cellular therapy product code: 'S' + 4 digits, "
            "e.g. 'S9002' (collection type and division are added per container)"
        )
    return code


def product_code_for(container_type: str) -> str:
    """The 5-character code of a container type; names the known types if unknown."""
    try:
        return PRODUCT_CODES[container_type]
    except KeyError:
        known = ", ".join(repr(name) for name in PRODUCT_CODES)
        raise ValueError(
            f"no product code for container type {container_type!r}: known types are "
            f"{known}; give the plan a product_code of its own"
        ) from None


def division(index: int, count: int) -> str:
    """Division of container ``index`` (1-based) of ``count``: ``00`` alone, else A0, B0..."""
    if count == 1:
        return "00"
    if not 1 <= index <= count <= len(string.ascii_uppercase):
        raise ValueError(f"division {index} of {count}: at most 26 divisions (A0-Z0)")
    return f"{string.ascii_uppercase[index - 1]}0"
