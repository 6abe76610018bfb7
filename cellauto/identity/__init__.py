"""Identification of products: ISBT 128 identifiers and their check characters."""

from cellauto.identity.isbt128 import (
    check_character,
    coi_barcode,
    din_barcode,
    parse_coi_barcode,
    validate_identifier,
)

__all__ = [
    "check_character",
    "coi_barcode",
    "din_barcode",
    "parse_coi_barcode",
    "validate_identifier",
]
