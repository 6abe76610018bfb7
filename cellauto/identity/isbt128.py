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
    "din_eye_readable",
    "parse_coi_barcode",
    "parse_din_barcode",
    "parse_product_code_barcode",
    "product_code_barcode",
    "validate_din_with_check",
    "validate_flag",
    "validate_product_code",
]

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*"
_IDENTIFIER = re.compile(r"^[A-Z0-9]{5}[0-9]{2}[A-Z0-9]{6}$")
COI_PREFIX = "&/CH"
DIN_PREFIX = "="
PRODUCT_PREFIX = "<"
# Product code (data structure 003 as we print it): 5-character code (S + 4 digits for a
# cellular therapy product), 1 collection-type character, 2 division characters.
_PRODUCT_CODE = re.compile(r"^S[0-9]{4}[0-9A-Z][0-9A-Z]{2}$")


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


def validate_flag(din: str, flag: str) -> str:
    """Return ``flag`` if it is one we print for ``din``, else raise ``ValueError``.

    ``00`` none, ``01``-``04`` container n of a set, ``60``-``96`` the DIN's check value
    + 60 (a flag in that range with another value is a wrong check character).
    """
    if flag in ("00", "01", "02", "03", "04"):
        return flag
    if not re.fullmatch(r"[0-9]{2}", flag) or not 60 <= int(flag) <= 96:
        raise ValueError(
            f"DIN flag {flag!r} is not one we use: 00 (none), 01-04 (container n of a set) "
            "or 60-96 (check value + 60)"
        )
    expected = check_value(din) + 60
    if int(flag) != expected:
        raise ValueError(
            f"DIN {din}: flag {flag} carries check character "
            f"{_ALPHABET[int(flag) - 60]!r}, the DIN's check character is "
            f"{check_character(din)!r} (flag {expected}): misread, or a label of another DIN"
        )
    return flag


def parse_din_barcode(data: str) -> tuple[str, str]:
    """``(din, flag)`` from scanned DIN data (``=`` + 13 + 2); refuses a bad form or check."""
    if not data.startswith(DIN_PREFIX) or len(data) != len(DIN_PREFIX) + 15:
        raise IdentityMismatchError(
            f"scanned {data!r} is not an ISBT 128 DIN barcode "
            f"({DIN_PREFIX} + 13 characters + 2 flag characters)"
        )
    din, flag = data[1:14], data[14:]
    try:
        validate_identifier(din)
        validate_flag(din, flag)
    except ValueError as exc:
        raise IdentityMismatchError(f"scanned {data!r}: {exc}") from None
    return din, flag


def validate_din_with_check(din_and_check: str) -> str:
    """The 13-character DIN of a DIN typed with its check character (14 characters).

    Refuses a wrong check character, naming the one typed and the one expected.
    """
    text = din_and_check.replace(" ", "")
    if len(text) != 14:
        raise ValueError(
            f"{din_and_check!r} is not a DIN with its check character: 13 characters "
            "+ 1 check character, e.g. 'G123498654321H'"
        )
    din, typed = validate_identifier(text[:13]), text[13]
    expected = check_character(din)
    if typed != expected:
        raise ValueError(
            f"DIN {din}: check character {typed!r} is wrong, the DIN's check character "
            f"is {expected!r}: re-read the label"
        )
    return din


def din_eye_readable(din: str) -> str:
    """The printed eye-readable form: ``G1234 98 654321 H`` (facility, year, sequence, check)."""
    validate_identifier(din)
    return f"{din[:5]} {din[5:7]} {din[7:]} {check_character(din)}"


def validate_product_code(code: str) -> str:
    """Return an 8-character product code (``S12341A0``) if well formed, else raise."""
    if not _PRODUCT_CODE.match(code):
        raise ValueError(
            f"{code!r} is not an 8-character cellular therapy product code: 'S' + 4 digits, "
            "1 collection-type character, 2 division characters, e.g. 'S12341A0'"
        )
    return code


def product_code_barcode(code: str) -> str:
    """Barcode data of a product code: ``<`` + 8 characters."""
    return f"{PRODUCT_PREFIX}{validate_product_code(code)}"


def parse_product_code_barcode(data: str) -> str:
    """The product code in scanned barcode data; refuses anything else."""
    code = data[1:]
    if not data.startswith(PRODUCT_PREFIX) or not _PRODUCT_CODE.match(code):
        raise IdentityMismatchError(
            f"scanned {data!r} is not a product code barcode "
            f"({PRODUCT_PREFIX} + 'S' + 4 digits + collection type + 2 division characters)"
        )
    return code


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
