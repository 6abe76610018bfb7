"""Identification of products: ISBT 128 identifiers, container identities, labels."""

from cellauto.identity.containers import ContainerIdentity, ContainerPlan, identities
from cellauto.identity.isbt128 import (
    check_character,
    coi_barcode,
    din_barcode,
    din_eye_readable,
    parse_coi_barcode,
    parse_din_barcode,
    parse_product_code_barcode,
    product_code_barcode,
    validate_din_with_check,
    validate_identifier,
)

__all__ = [
    "ContainerIdentity",
    "ContainerPlan",
    "check_character",
    "coi_barcode",
    "din_barcode",
    "din_eye_readable",
    "identities",
    "parse_coi_barcode",
    "parse_din_barcode",
    "parse_product_code_barcode",
    "product_code_barcode",
    "validate_din_with_check",
    "validate_identifier",
]
