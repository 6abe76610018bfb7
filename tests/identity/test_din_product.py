"""DIN and product code barcodes: PROCESS.md's worked examples, wrong check characters."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cellauto.errors import IdentityMismatchError
from cellauto.identity import (
    check_character,
    din_barcode,
    din_eye_readable,
    parse_din_barcode,
    parse_product_code_barcode,
    product_code_barcode,
    validate_din_with_check,
)

from .test_isbt128 import IDENTIFIERS


@pytest.mark.parametrize(("din", "flag"), [("G123498654321", "77"), ("G123417654321", "70")])
def test_worked_examples_flag_is_check_value_plus_60(din: str, flag: str) -> None:
    assert parse_din_barcode(f"={din}{flag}") == (din, flag)


@pytest.mark.parametrize("flag", ["00", "01", "02", "03", "04"])
def test_set_flags_carry_no_check(flag: str) -> None:
    assert parse_din_barcode(din_barcode("G123498654321", flag)) == ("G123498654321", flag)


def test_flag_with_wrong_check_character_is_refused_naming_both() -> None:
    # G123498654321 has check H (17, flag 77); flag 70 carries A (10).
    with pytest.raises(IdentityMismatchError, match=r"flag 70 carries check character 'A'.*'H'"):
        parse_din_barcode("=G12349865432170")


@pytest.mark.parametrize("data", ["=G12349865432105", "=G12349865432159", "=G12349865432197"])
def test_unknown_flags_are_refused(data: str) -> None:
    with pytest.raises(IdentityMismatchError, match="not one we use"):
        parse_din_barcode(data)


@pytest.mark.parametrize(
    "data", ["G12349865432177", "=G1234986543217", "&/CHG123498654321H", "=g12349865432177"]
)
def test_other_data_is_not_a_din(data: str) -> None:
    with pytest.raises(IdentityMismatchError):
        parse_din_barcode(data)


@given(IDENTIFIERS, st.sampled_from("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*"))
def test_typed_din_with_check(din: str, typed: str) -> None:
    if typed == check_character(din):
        assert validate_din_with_check(din + typed) == din
    else:
        with pytest.raises(ValueError, match=re.escape(f"check character {typed!r} is wrong")):
            validate_din_with_check(din + typed)


def test_din_param_wrong_check_refused() -> None:
    """The issue's bad input: an ISBT 128 identifier with a wrong check character."""
    assert validate_din_with_check("G1234 98 654321 H") == "G123498654321"
    with pytest.raises(ValueError, match=r"check character 'A' is wrong.*is 'H'"):
        validate_din_with_check("G123498654321A")
    with pytest.raises(ValueError, match="13 characters"):
        validate_din_with_check("G123498654321")


def test_eye_readable() -> None:
    assert din_eye_readable("G123498654321") == "G1234 98 654321 H"


def test_product_code_round_trip_and_refusals() -> None:
    assert product_code_barcode("S12341A0") == "<S12341A0"
    assert parse_product_code_barcode("<S12341A0") == "S12341A0"
    with pytest.raises(ValueError, match="8-character"):
        product_code_barcode("E12341A0")
    for data in ("S12341A0", "<S1234", "=G12349865432177", "<s12341a0"):
        with pytest.raises(IdentityMismatchError, match="not a product code"):
            parse_product_code_barcode(data)
