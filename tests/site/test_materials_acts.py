"""The site's acts on materials and lots: each one transaction (record, row, signature);
every refusal journaled as ``lot_act_refused`` and raised, the act's writes rolled back."""

from __future__ import annotations

from datetime import date

import pytest

from cellauto.errors import BadInputError, MaterialRefusedError, PermissionRefusedError
from cellauto.records.refs import Meaning
from cellauto.records.site_payloads import Signature, SignatureRefused
from cellauto.records.site_payloads_mat import (
    LotActRefused,
    LotAdjusted,
    LotReceived,
    LotRejected,
    LotReleased,
    MaterialDefined,
    MaterialKindName,
    Storage,
    Unit,
)
from cellauto.site.materials import (
    adjust_lot,
    default_lot_id,
    define_material,
    receive_lot,
    reject_lot,
    release_lot,
)
from cellauto.site.materials_read import read_lot

from .conftest import Site

VECTOR = "CAR lentiviral vector"
LOT = "car-lentiviral-vector/L2291"
FAR = date(2099, 12, 31)
PAST = date(2026, 1, 1)


def _define(site: Site, who: str = "carol", name: str = VECTOR) -> None:
    define_material(
        site.store,
        site.sign_in(who),
        name,
        material_kind=MaterialKindName.VECTOR,
        unit=Unit.ML,
        storage=Storage.ULT,
        attributes=["titer_tu_per_ml"],
        reason="new product",
    )


def _receive(
    site: Site,
    who: str = "alice",
    *,
    supplier_lot: str = "L2291",
    expires_on: date = FAR,
    quantity_milli: int = 12_500,
    attributes: dict[str, float | str] | None = None,
    received_on: date | None = PAST,
) -> None:
    receive_lot(
        site.store,
        site.sign_in(who),
        VECTOR,
        supplier="Vectors Inc",
        supplier_lot=supplier_lot,
        expires_on=expires_on,
        quantity_milli=quantity_milli,
        received_on=received_on,
        attributes={"titer_tu_per_ml": 1.0e8} if attributes is None else attributes,
    )


def _refusal(site: Site, before: int) -> LotActRefused:
    records = site.new_records(before)
    assert isinstance(records[0], LotActRefused), records
    return records[0]


def _status(site: Site, lot_id: str = LOT) -> str | None:
    with site.store.reading() as conn:
        row = read_lot(conn, lot_id)
    return None if row is None else row.status


def test_default_lot_id_is_the_material_slug_and_supplier_lot() -> None:
    assert default_lot_id("CAR lentiviral vector", "L2291") == LOT


def test_define_receive_release(site: Site) -> None:
    _define(site)
    _receive(site)
    assert _status(site) == "quarantine"
    before = site.head()
    decision = release_lot(site.store, site.sign_in("bob"), LOT, reason="CoA reviewed")
    released, signature = site.new_records(before)
    assert isinstance(released, LotReleased) and released.by == "bob"
    assert isinstance(signature, Signature) and signature.meaning == Meaning.RELEASED
    assert signature.signed.seq == decision.record.seq and signature.signed.kind == "lot_released"
    assert _status(site) == "released"


def test_reject_is_signed_rejected(site: Site) -> None:
    _define(site)
    _receive(site)
    before = site.head()
    reject_lot(site.store, site.sign_in("bob"), LOT, cause="CoA titre out of spec")
    rejected, signature = site.new_records(before)
    assert isinstance(rejected, LotRejected) and rejected.cause == "CoA titre out of spec"
    assert isinstance(signature, Signature) and signature.meaning == Meaning.REJECTED
    assert _status(site) == "rejected"


def test_reject_needs_a_reason(site: Site) -> None:
    _define(site)
    _receive(site)
    before = site.head()
    with pytest.raises(BadInputError, match="needs a reason"):
        reject_lot(site.store, site.sign_in("bob"), LOT, cause=" ")
    assert site.head() == before


@pytest.mark.parametrize("who", ["alice", "root"])
def test_only_supervisors_and_qa_define(site: Site, who: str) -> None:
    before = site.head()
    with pytest.raises(PermissionRefusedError, match=r"needs material\.define"):
        define_material(
            site.store,
            site.root() if who == "root" else site.sign_in(who),
            VECTOR,
            material_kind=MaterialKindName.VECTOR,
            unit=Unit.ML,
            storage=Storage.ULT,
        )
    refusal = _refusal(site, before)
    assert (refusal.act, refusal.cause, refusal.lot_id) == ("define", "permission", VECTOR)


def test_qa_defines_too_and_a_material_is_defined_once(site: Site) -> None:
    _define(site, "bob")
    before = site.head()
    with pytest.raises(MaterialRefusedError, match="defined already"):
        _define(site, "carol")
    assert _refusal(site, before).cause == "material_exists"
    assert [type(r) for r in site.records()].count(MaterialDefined) == 1


def test_receive_refusals(site: Site) -> None:
    before = site.head()
    with pytest.raises(MaterialRefusedError, match="is not defined"):
        _receive(site)
    assert _refusal(site, before).cause == "unknown_material"
    _define(site)
    _receive(site)
    cases: list[tuple[dict[str, object], str]] = [
        ({}, "lot_exists"),
        ({"supplier_lot": "L2", "expires_on": date(2025, 12, 31)}, "expiry_before_receipt"),
        ({"supplier_lot": "L3", "quantity_milli": 0}, "quantity"),
        ({"supplier_lot": "L4", "quantity_milli": -5}, "quantity"),
        ({"supplier_lot": "L5", "received_on": FAR}, "received_in_future"),
    ]
    for kwargs, cause in cases:
        before = site.head()
        with pytest.raises(MaterialRefusedError):
            _receive(site, **kwargs)  # type: ignore[arg-type]
        refusal = _refusal(site, before)
        assert (refusal.act, refusal.cause) == ("receive", cause)
        assert len(site.new_records(before)) == 1  # nothing else written
    assert [type(r) for r in site.records()].count(LotReceived) == 1


def test_qa_does_not_receive(site: Site) -> None:
    _define(site)
    before = site.head()
    with pytest.raises(PermissionRefusedError, match=r"lot\.receive \(operator or supervisor\)"):
        _receive(site, "bob")
    assert _refusal(site, before).cause == "permission"


@pytest.mark.parametrize("who", ["alice", "carol"])
def test_release_by_anyone_but_qa_is_refused(site: Site, who: str) -> None:
    _define(site)
    _receive(site)
    before = site.head()
    with pytest.raises(PermissionRefusedError, match=r"needs lot\.release \(qa\)"):
        release_lot(site.store, site.sign_in(who), LOT)
    refusal = _refusal(site, before)
    assert (refusal.act, refusal.cause) == ("release", "permission")
    assert _status(site) == "quarantine"


def test_the_receiver_cannot_release(site: Site) -> None:
    site.add("erin", "qa", "supervisor")
    _define(site)
    _receive(site, "erin")
    before = site.head()
    with pytest.raises(PermissionRefusedError, match=r"received lot .* may not release"):
        release_lot(site.store, site.sign_in("erin"), LOT)
    assert _refusal(site, before).cause == "received_by_releaser"
    release_lot(site.store, site.sign_in("bob"), LOT)
    assert _status(site) == "released"


def test_release_refusals(site: Site) -> None:
    _define(site)
    before = site.head()
    with pytest.raises(MaterialRefusedError, match="no lot"):
        release_lot(site.store, site.sign_in("bob"), "nope/1")
    assert _refusal(site, before).cause == "unknown_lot"

    _receive(site, supplier_lot="OLD", expires_on=date(2026, 1, 31))
    before = site.head()
    with pytest.raises(MaterialRefusedError, match="expired on 2026-01-31"):
        release_lot(site.store, site.sign_in("bob"), "car-lentiviral-vector/OLD")
    assert _refusal(site, before).cause == "expired"

    _receive(site, supplier_lot="BARE", attributes={"coa": "CoA-1"})
    before = site.head()
    with pytest.raises(MaterialRefusedError, match="lacks titer_tu_per_ml"):
        release_lot(site.store, site.sign_in("bob"), "car-lentiviral-vector/BARE")
    assert _refusal(site, before).cause == "missing_attribute"

    _receive(site)
    release_lot(site.store, site.sign_in("bob"), LOT)
    before = site.head()
    with pytest.raises(MaterialRefusedError, match="released, not in quarantine"):
        release_lot(site.store, site.sign_in("bob"), LOT)
    assert _refusal(site, before).cause == "not_in_quarantine"


def test_a_refused_signature_is_journaled_beside_the_refusal(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The signature check refusing (here: the permission it is asked for differs) rolls
    back the release; both refusals are journaled."""
    from cellauto.site import materials
    from cellauto.site.roles import Permission

    _define(site)
    _receive(site)
    real = materials.sign

    def wrong_permission(*args: object, **kwargs: object) -> object:
        kwargs["permission"] = Permission.BATCH_RELEASE
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(materials, "sign", wrong_permission)
    before = site.head()
    with pytest.raises(PermissionRefusedError, match="signature refused"):
        release_lot(site.store, site.sign_in("bob"), LOT)
    refused, signature_refused = site.new_records(before)
    assert isinstance(refused, LotActRefused) and refused.cause == "signature"
    assert isinstance(signature_refused, SignatureRefused)
    assert _status(site) == "quarantine"
    from cellauto.records import Journal, verify_journal
    from cellauto.site.replay import replay_problem

    with Journal(site.store.location, create=False) as journal:
        report = verify_journal(journal, site_replay=replay_problem)
    assert report.site.intact, report.site.reason


def test_adjust(site: Site) -> None:
    _define(site)
    _receive(site)
    before = site.head()
    with pytest.raises(PermissionRefusedError, match=r"lot\.adjust \(supervisor\)"):
        adjust_lot(site.store, site.sign_in("alice"), LOT, delta_milli=-500, cause="spill")
    assert _refusal(site, before).cause == "permission"
    before = site.head()
    with pytest.raises(MaterialRefusedError, match="cannot lose 13"):
        adjust_lot(site.store, site.sign_in("carol"), LOT, delta_milli=-13_000, cause="count")
    assert _refusal(site, before).cause == "quantity"
    with pytest.raises(BadInputError, match="needs a reason"):
        adjust_lot(site.store, site.sign_in("carol"), LOT, delta_milli=-500, cause="")
    adjust_lot(site.store, site.sign_in("carol"), LOT, delta_milli=-500, cause="spill")
    assert isinstance(site.records()[-1], LotAdjusted)
    with site.store.reading() as conn:
        row = read_lot(conn, LOT)
    assert row is not None and row.remaining_milli == 12_000


def test_a_lot_id_that_cannot_be_scanned_is_bad_input(site: Site) -> None:
    _define(site, name="IL-2 (10 µg)")
    before = site.head()
    with pytest.raises(BadInputError, match="give --lot-id"):
        receive_lot(
            site.store,
            site.sign_in("alice"),
            "IL-2 (10 µg)",
            supplier="S",
            supplier_lot="A1",
            expires_on=FAR,
            quantity_milli=1000,
        )
    assert site.head() == before


@pytest.mark.parametrize(
    ("name", "attributes", "match"),
    [
        ("x" * 81, [], "at most 80 characters"),
        (VECTOR, ["titer", "titer"], "each named once"),
        (VECTOR, [" "], "each named once"),
    ],
)
def test_a_definition_that_cannot_be_a_record_writes_nothing(
    site: Site, name: str, attributes: list[str], match: str
) -> None:
    before = site.head()
    with pytest.raises(BadInputError, match=match):
        define_material(
            site.store,
            site.sign_in("carol"),
            name,
            material_kind=MaterialKindName.VECTOR,
            unit=Unit.ML,
            storage=Storage.ULT,
            attributes=attributes,
        )
    assert site.head() == before


def test_a_rejected_lot_is_not_rejected_twice_nor_adjusted_by_zero(site: Site) -> None:
    _define(site)
    _receive(site)
    reject_lot(site.store, site.sign_in("bob"), LOT, cause="damaged in transit")
    before = site.head()
    with pytest.raises(MaterialRefusedError, match="rejected already"):
        reject_lot(site.store, site.sign_in("bob"), LOT, cause="again")
    assert _refusal(site, before).cause == "rejected_already"
    before = site.head()
    with pytest.raises(MaterialRefusedError, match="by 0 changes nothing"):
        adjust_lot(site.store, site.sign_in("carol"), LOT, delta_milli=0, cause="count")
    assert _refusal(site, before).cause == "quantity"
