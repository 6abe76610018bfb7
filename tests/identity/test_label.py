"""The final product label: 21 CFR 1271.370 text, its ZPL, and checking a scan of it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from cellauto.errors import IdentityMismatchError
from cellauto.identity import ContainerPlan, check_character, identities
from cellauto.identity.label import (
    AUTOLOGOUS_STATEMENT,
    Label,
    LabelText,
    check_scan,
    identity_code,
    label_for,
    read_identity,
    to_zpl,
)
from cellauto.identity.zpl import parse_zpl

DIN = "G123498654321"
COI = "W123426A1B2C3"
EXPIRES = datetime(2027, 12, 20, 23, 59, tzinfo=UTC)
BAGS = identities(
    DIN,
    COI,
    [ContainerPlan(key="final product", container_type="final product", final=True, count=3)],
)


def bag_label(key: str = "final product 1") -> Label:
    return label_for(
        BAGS[key],
        product="CAR-T cells, autologous",
        expires=EXPIRES,
        volume_ml=70.0,
        cells="1.2e8 CAR+ viable T cells",
        facility="Cellauto Pilot Plant, 1 Example Way, Springfield",
    )


def test_text_carries_every_1271_370_field() -> None:
    lines = bag_label().text.lines()
    coi_check = check_character(COI)
    assert lines == (
        f"DIN G1234 98 654321 H  01  S12341A0  COI {COI} {coi_check}",
        "CAR-T cells, autologous",
        "EXP 2027-12-20 23:59 UTC",
        "FOR AUTOLOGOUS USE ONLY",
        "70 mL  1.2e8 CAR+ viable T cells",
        "Do not irradiate; Store at or below -150 °C",
        "Cellauto Pilot Plant, 1 Example Way, Springfield",
    )


def test_statement_cannot_be_changed_and_expiry_must_carry_a_zone() -> None:
    fields = bag_label().text.model_dump()
    with pytest.raises(ValidationError):
        LabelText.model_validate({**fields, "statement": "FOR CLINICAL USE"})
    with pytest.raises(ValidationError, match="timezone"):
        LabelText.model_validate({**fields, "expires": datetime(2027, 12, 20)})


def test_text_of_another_bag_is_refused() -> None:
    text = bag_label("final product 2").text
    with pytest.raises(ValidationError, match="build the text with label_for"):
        Label(identity=BAGS["final product 1"], text=text)


def test_zpl_prints_the_text_and_three_symbols() -> None:
    label = bag_label()
    printed = parse_zpl(to_zpl(label))
    assert tuple(t.text for t in printed.texts) == label.text.lines()
    assert [(s.symbology, s.data) for s in printed.symbols] == [
        ("code128", "=G12349865432101"),
        ("code128", "<S12341A0"),
        (
            "datamatrix",
            f"=G12349865432101|&/CH{COI}{check_character(COI)}|<S12341A0|2027-12-20T23:59Z",
        ),
    ]
    assert AUTOLOGOUS_STATEMENT in to_zpl(label)
    assert to_zpl(label) == to_zpl(bag_label())  # deterministic
    hi = parse_zpl(to_zpl(label, dpi=300))
    assert (hi.width, hi.length) == (1200, 600)
    assert [s.data for s in hi.symbols] == [s.data for s in printed.symbols]


def test_identity_round_trips_through_the_data_matrix_in_utc() -> None:
    data = bag_label().symbols()[2].data
    read = read_identity(data)
    assert read.identity == BAGS["final product 1"]
    assert read.expires == EXPIRES
    zoned = label_for(
        BAGS["final product 1"],
        product="x",
        expires=EXPIRES.astimezone(timezone(timedelta(hours=2))),
        volume_ml=1,
        cells="y",
        facility="z",
    )
    assert zoned.symbols()[2].data == data


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ("=G12349865432101|&/CHW123426A1B2C3", "not a label identity"),
        ("=G12349865432170|&/CHW123426A1B2C3X|<S12341A0|2027-12-20T23:59Z", "flag 70"),
        ("=G12349865432101|&/CHW123426A1B2C3*|<S12341A0|2027-12-20T23:59Z", "check character"),
        ("=G12349865432101|&/CHW123426A1B2C3X|S12341A0|2027-12-20T23:59Z", "product code"),
        ("=G12349865432101|&/CHW123426A1B2C3X|<S12341A0|20.12.2027", "expiry"),
    ],
)
def test_bad_identity_data_refused(data: str, match: str) -> None:
    good = f"&/CH{COI}{check_character(COI)}"
    data = data.replace("&/CHW123426A1B2C3X", good)
    with pytest.raises(IdentityMismatchError, match=match):
        read_identity(data)


def test_check_scan_matches_what_was_printed() -> None:
    label = bag_label()
    decoded = [(s.symbology, s.data) for s in label.symbols()]
    check = check_scan(label, list(reversed(decoded)))
    assert check.matches and check.differences == ()
    assert check.read is not None and check.read.identity == label.identity


def test_check_scan_of_another_bags_label_names_both_identities() -> None:
    other = [(s.symbology, s.data) for s in bag_label("final product 2").symbols()]
    check = check_scan(bag_label(), other)
    assert not check.matches
    assert check.read is not None and check.read.identity == BAGS["final product 2"]
    assert any("the label identifies" in d and "S12341B0" in d for d in check.differences)
    assert any(d.startswith("din symbol") for d in check.differences)


def test_check_scan_names_a_missing_and_an_unreadable_symbol() -> None:
    label = bag_label()
    din, product, _ = ((s.symbology, s.data) for s in label.symbols())
    check = check_scan(label, [din, product])
    assert not check.matches and check.read is None
    assert check.differences == (
        f"identity symbol (datamatrix) {label.symbols()[2].data!r} not read from the label",
    )
    garbled = check_scan(label, [din, product, ("datamatrix", "garbage")])
    assert not garbled.matches
    assert any("identity symbol unreadable" in d for d in garbled.differences)
    assert any("should not" in d for d in garbled.differences)


def test_identity_code_shows_both_identifiers_with_checks() -> None:
    code = identity_code(BAGS["final product 3"])
    assert code.startswith("DIN G1234 98 654321 H  03  S12341C0  COI ")
    assert code.endswith(f"{COI} {check_character(COI)}")
