"""Container identities derived from a batch's DIN and chain-of-identity id."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cellauto.identity import ContainerIdentity, ContainerPlan, check_character, identities
from cellauto.identity.codes import PRODUCT_CODES, product_code_for

DIN = "G123498654321"
COI = "W123426A1B2C3"

CAR_T = [
    ContainerPlan(key="apheresis bag", container_type="apheresis bag"),
    ContainerPlan(
        key="selected fraction", container_type="selected fraction", parents=("apheresis bag",)
    ),
    ContainerPlan(key="culture bag", container_type="culture bag", parents=("selected fraction",)),
    ContainerPlan(key="harvest bag", container_type="harvest bag", parents=("culture bag",)),
    ContainerPlan(key="washed product", container_type="washed product", parents=("harvest bag",)),
    ContainerPlan(
        key="final product",
        container_type="final product",
        parents=("washed product",),
        final=True,
        count=3,
    ),
    ContainerPlan(key="QC sample", container_type="QC sample", parents=("final product 1",)),
    ContainerPlan(
        key="retained sample", container_type="retained sample", parents=("final product 1",)
    ),
]


def test_car_t_containers_each_get_their_own_identity() -> None:
    ids = identities(DIN, COI, CAR_T)
    assert list(ids) == [
        "apheresis bag",
        "selected fraction",
        "culture bag",
        "harvest bag",
        "washed product",
        "final product 1",
        "final product 2",
        "final product 3",
        "QC sample",
        "retained sample",
    ]
    assert len(set(ids.values())) == len(ids)
    assert {i.din for i in ids.values()} == {DIN}
    assert {i.coi for i in ids.values()} == {COI}
    finals = [ids[f"final product {n}"] for n in (1, 2, 3)]
    assert [(f.flag, f.product_code) for f in finals] == [
        ("01", "S12341A0"),
        ("02", "S12341B0"),
        ("03", "S12341C0"),
    ]
    assert ids["culture bag"].flag == "77"  # G123498654321: check value 17 + 60
    assert ids["culture bag"].product_code == "S90021" + "00"
    assert ids["final product 2"].din_data() == "=G12349865432102"
    assert ids["final product 2"].product_data() == "<S12341B0"
    assert ids["final product 2"].coi_data() == f"&/CH{COI}{check_character(COI)}"
    assert ids["final product 2"].text() == "G1234 98 654321 H"


def test_identities_are_deterministic_and_frozen() -> None:
    assert identities(DIN, COI, CAR_T) == identities(DIN, COI, CAR_T)
    identity = identities(DIN, COI, CAR_T)["culture bag"]
    with pytest.raises(ValidationError):
        identity.flag = "00"  # type: ignore[misc]


def test_samples_of_one_draw_get_divisions() -> None:
    ids = identities(DIN, COI, [ContainerPlan(key="QC", container_type="QC sample", count=2)])
    assert [i.product_code for i in ids.values()] == ["S90041A0", "S90041B0"]
    assert list(ids) == ["QC 1", "QC 2"]


def test_more_than_four_final_bags_refused() -> None:
    with pytest.raises(ValidationError, match="at most 4 bags"):
        ContainerPlan(key="final product", container_type="final product", final=True, count=5)


def test_two_containers_with_one_identity_refused() -> None:
    plans = [
        ContainerPlan(key="bag a", container_type="culture bag"),
        ContainerPlan(key="bag b", container_type="culture bag"),
    ]
    with pytest.raises(ValueError, match=r"'bag a' and 'bag b' would carry the same identity"):
        identities(DIN, COI, plans)
    plans[1] = ContainerPlan(key="bag b", container_type="culture bag", product_code="S9100")
    assert identities(DIN, COI, plans)["bag b"].product_code == "S91001" + "00"


def test_duplicate_key_and_unknown_parent_refused() -> None:
    bag = ContainerPlan(key="bag", container_type="culture bag")
    with pytest.raises(ValueError, match="declared twice"):
        identities(DIN, COI, [bag, bag])
    orphan = ContainerPlan(key="x", container_type="harvest bag", parents=("nowhere",))
    with pytest.raises(ValueError, match="parent 'nowhere' is not a declared container"):
        identities(DIN, COI, [bag, orphan])


def test_unknown_container_type_names_the_table() -> None:
    with pytest.raises(ValueError, match="no product code for container type 'tube'"):
        ContainerPlan(key="t", container_type="tube")
    with pytest.raises(ValueError, match="'culture bag'"):
        product_code_for("tube")


def test_table_codes_are_distinct_and_well_formed() -> None:
    assert len(set(PRODUCT_CODES.values())) == len(PRODUCT_CODES)
    for code in PRODUCT_CODES.values():
        assert code[0] == "S" and code[1:].isdigit() and len(code) == 5


def test_identity_refuses_a_flag_with_a_wrong_check() -> None:
    with pytest.raises(ValidationError, match="flag 70 carries check character 'A'"):
        ContainerIdentity(din=DIN, flag="70", product_code="S90021" + "00", coi=COI)


def test_malformed_own_product_code_refused() -> None:
    with pytest.raises(ValidationError, match="'S12' is not a 5-character"):
        ContainerPlan(key="bag", container_type="culture bag", product_code="S12")


def test_single_final_bag_is_bag_one_undivided() -> None:
    plan = ContainerPlan(key="final product", container_type="final product", final=True)
    (identity,) = identities(DIN, COI, [plan]).values()
    assert (identity.flag, identity.product_code) == ("01", "S12341" + "00")
