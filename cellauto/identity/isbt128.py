"""ISBT 128 identifiers: the Donation Identification Number and the chain-of-identity id.

Both identifiers here are 13 characters: a 5-character facility code, a 2-digit
year and 6 further characters (digits for a DIN sequence; alphanumerics for a
chain-of-identity id). The check character is ISO 7064 mod 37-2 over the 13
characters: each character's value (0-9 digits, A-Z 10-35, ``*`` 36) times
2^(13 - position), summed; (38 - sum mod 37) mod 37 is the check value, shown as
0-9, A-Z or ``*``. ``G123498654321`` has check value 17, shown ``H``.

Barcode data: a DIN is ``=`` + 13 characters + 2 flag characters (``00`` none;
``60``-``96`` carry the check value + 60). A chain-of-identity id (data structure
040) is ``&/CH`` + 13 characters + the check character.
"""

from __future__ import annotations

import re

from cellauto.errors import IdentityMismatchError

__all__ = [
    "check_character",
    "coi_barcode",
    "din_barcode",
    "parse_coi_barcode",
    "validate_identifier",
]

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*"
_IDENTIFIER = re.compile(r"^[A-Z0-9]{5}[0-9]{2}[A-Z0-9]{6}$")
COI_PREFIX = "&/CH"


def validate_identifier(identifier: str) -> str:
    """Return ``identifier`` if it is 13 characters of the ISBT 128 form, else raise."""
    if not _IDENTIFIER.match(identifier):
        raise ValueError(
            f"{identifier!r} is not a 13-character ISBT 128 identifier: 5-character facility "
            "code (A-Z, 0-9), 2-digit year, 6 characters (A-Z, 0-9), e.g. 'W123426A1B2C3'"
        )
    return identifier


def check_value(identifier: str) -> int:
    """The ISO 7064 mod 37-2 check value (0-36) of a 13-character identifier."""
    validate_identifier(identifier)
    length = len(identifier)
    total = sum(
        _ALPHABET.index(char) << (length - position) for position, char in enumerate(identifier)
    )
    return (38 - total % 37) % 37


def check_character(identifier: str) -> str:
    """The check character printed after the identifier (``G123498654321`` -> ``H``)."""
    return _ALPHABET[check_value(identifier)]


def din_barcode(din: str, flag: str = "00") -> str:
    """Barcode data of a DIN: ``=`` + 13 characters + 2 flag characters."""
    validate_identifier(din)
    if not re.fullmatch(r"[0-9]{2}", flag):
        raise ValueError(f"DIN flag {flag!r} must be two digits (00 none, 01-04, 60-96)")
    return f"={din}{flag}"


def coi_barcode(coi: str) -> str:
    """Barcode data of a chain-of-identity id: ``&/CH`` + 13 characters + check character."""
    return f"{COI_PREFIX}{coi}{check_character(coi)}"


def parse_coi_barcode(data: str) -> str:
    """The chain-of-identity id in scanned barcode data; refuses a bad form or check."""
    if not data.startswith(COI_PREFIX) or len(data) != len(COI_PREFIX) + 14:
        raise IdentityMismatchError(
            f"scanned {data!r} is not an ISBT 128 chain-of-identity barcode "
            f"({COI_PREFIX} + 13 characters + check character)"
        )
    identifier, printed = data[len(COI_PREFIX) : -1], data[-1]
    try:
        expected = check_character(identifier)
    except ValueError as exc:
        raise IdentityMismatchError(f"scanned {data!r}: {exc}") from None
    if printed != expected:
        raise IdentityMismatchError(
            f"scanned {data!r}: check character {printed!r} does not match {expected!r} — "
            "misread or damaged label"
        )
    return identifier
