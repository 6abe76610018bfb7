"""ISBT 128 check characters against PROCESS.md's worked examples, and barcode parsing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cellauto.errors import IdentityMismatchError
from cellauto.identity import (
    check_character,
    coi_barcode,
    din_barcode,
    parse_coi_barcode,
    validate_identifier,
)
from cellauto.identity.isbt128 import check_value

IDENTIFIERS = st.builds(
    lambda f, y, s: f + y + s,
    st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=5, max_size=5),
    st.text("0123456789", min_size=2, max_size=2),
    st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=6, max_size=6),
)


@pytest.mark.parametrize(
    ("din", "value", "char"), [("G123498654321", 17, "H"), ("G123417654321", 10, "A")]
)
def test_worked_examples(din: str, value: int, char: str) -> None:
    assert check_value(din) == value
    assert check_character(din) == char
    assert din_barcode(din, f"{value + 60}") == f"={din}{value + 60}"


@given(IDENTIFIERS)
def test_barcode_round_trip(identifier: str) -> None:
    assert parse_coi_barcode(coi_barcode(identifier)) == identifier


@given(IDENTIFIERS, st.integers(0, 12), st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"))
def test_a_single_substitution_is_caught(identifier: str, position: int, char: str) -> None:
    """ISO 7064 mod 37-2 detects every single-character substitution."""
    changed = identifier[:position] + char + identifier[position + 1 :]
    if changed == identifier or not changed[5:7].isdigit():
        return
    barcode = coi_barcode(identifier)
    misread = barcode[:4] + changed + barcode[-1]
    with pytest.raises(IdentityMismatchError):
        parse_coi_barcode(misread)


@pytest.mark.parametrize("bad", ["W1234", "w123426A1B2C3", "W1234XXA1B2C3", "W123426A1B2C3X"])
def test_malformed_identifiers_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="13-character ISBT 128"):
        validate_identifier(bad)


@pytest.mark.parametrize("data", ["=W123426A1B2C300", "&/CHW123426A1B2C", "W123426A1B2C3"])
def test_other_barcodes_are_not_a_coi(data: str) -> None:
    with pytest.raises(IdentityMismatchError, match="not an ISBT 128 chain-of-identity"):
        parse_coi_barcode(data)
