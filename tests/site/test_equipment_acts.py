"""The equipment registry's acts: signed, permitted to supervisors, refusals journaled."""

from __future__ import annotations

import time
from datetime import date, timedelta

import pytest

from cellauto.errors import BadInputError, EquipmentRefusedError, PermissionRefusedError
from cellauto.records import Journal, verify_journal
from cellauto.records.refs import Meaning
from cellauto.records.site_payloads import Signature
from cellauto.records.site_payloads_mat import (
    CalibrationRecorded,
    EquipmentActRefused,
    EquipmentAdded,
    EquipmentStatusChanged,
    Qualification,
)
from cellauto.site.equipment import add_equipment, record_calibration, set_status
from cellauto.site.materials_read import read_equipment
from cellauto.site.policy import site_date
from cellauto.site.replay import replay_problem

from .chain import POLICY
from .conftest import Site

TODAY = site_date(POLICY, time.time_ns())
DAY = timedelta(days=1)
QUALIFIED = Qualification(iq=TODAY - 3 * DAY, oq=TODAY - 2 * DAY, pq=TODAY - DAY)


def _add(site: Site, asset: str = "BR-001", serial: str = "BR-7730", **extra: object) -> None:
    add_equipment(
        site.store,
        site.sign_in("carol"),
        asset=asset,
        interface="Bioreactor",
        vendor="Acme",
        model="X1",
        serial=serial,
        reason="new bioreactor",
        **extra,  # type: ignore[arg-type]
    )


def _row(site: Site, asset: str = "BR-001"):  # type: ignore[no-untyped-def]
    with site.store.reading() as conn:
        return read_equipment(conn, asset=asset)


def test_added_signed_performed_and_qualifying(site: Site) -> None:
    before = site.head()
    _add(site, calibration_due=TODAY + 30 * DAY)
    added, signature = site.new_records(before)
    assert isinstance(added, EquipmentAdded) and isinstance(signature, Signature)
    assert (signature.signer, signature.meaning) == ("carol", Meaning.PERFORMED)
    assert signature.signed.seq == before + 1
    row = _row(site)
    assert row is not None and (row.status, row.serial) == ("qualifying", "BR-7730")


def test_operator_cannot_add_refusal_journaled(site: Site) -> None:
    before = site.head()
    with pytest.raises(PermissionRefusedError, match=r"alice \(operator\) may not add BR-001"):
        add_equipment(
            site.store,
            site.sign_in("alice"),
            asset="BR-001",
            interface="Bioreactor",
            vendor="Acme",
            model="X1",
            serial="S1",
        )
    (refused,) = site.new_records(before)
    assert isinstance(refused, EquipmentActRefused)
    assert (refused.asset, refused.act, refused.cause) == ("BR-001", "add", "permission")
    assert _row(site) is None


def test_qa_cannot_calibrate(site: Site) -> None:
    _add(site)
    with pytest.raises(PermissionRefusedError, match=r"equipment\.manage"):
        record_calibration(
            site.store,
            site.sign_in("bob"),
            "BR-001",
            performed_on=TODAY,
            result="pass",
            due=TODAY + DAY,
        )
    assert isinstance(site.records()[-1], EquipmentActRefused)


def test_duplicate_asset_and_serial_refused(site: Site) -> None:
    _add(site)
    with pytest.raises(BadInputError, match="'BR-001' is in the registry already"):
        _add(site, serial="other")
    with pytest.raises(BadInputError, match="serial 'BR-7730' is registered already as BR-001"):
        _add(site, asset="BR-002")
    causes = [r.cause for r in site.records() if isinstance(r, EquipmentActRefused)]
    assert causes == ["duplicate_asset", "duplicate_serial"]


def test_unknown_asset_refused(site: Site) -> None:
    with pytest.raises(BadInputError, match=r"no instrument 'BR-404'.*cellauto equipment add"):
        set_status(site.store, site.sign_in("carol"), "BR-404", "out_of_service", reason="x")
    assert site.records()[-1] == EquipmentActRefused(
        by="carol",
        reason="x",
        terminal=site.records()[-1].terminal,
        asset="BR-404",
        act="status",
        cause="unknown_asset",
        detail=str(site.records()[-1].detail),  # type: ignore[attr-defined]
    )


def test_in_service_refused_without_pq(site: Site) -> None:
    _add(site, qualification=Qualification(iq=TODAY, oq=TODAY))
    with pytest.raises(
        EquipmentRefusedError, match=r"^BR-001 cannot go in service: PQ not recorded"
    ):
        set_status(site.store, site.sign_in("carol"), "BR-001", "in_service", reason="qualified")
    refused = site.records()[-1]
    assert isinstance(refused, EquipmentActRefused) and refused.cause == "not_qualified"
    assert _row(site).status == "qualifying"  # type: ignore[union-attr]


def test_in_service_refused_when_calibration_due(site: Site) -> None:
    _add(site, qualification=QUALIFIED, calibration_due=TODAY - DAY)
    with pytest.raises(EquipmentRefusedError, match="calibration was due"):
        set_status(site.store, site.sign_in("carol"), "BR-001", "in_service", reason="go")


def test_in_service_with_pq_given_then_calibration(site: Site) -> None:
    _add(site, qualification=Qualification(iq=TODAY, oq=TODAY), calibration_due=TODAY + DAY)
    before = site.head()
    set_status(
        site.store,
        site.sign_in("carol"),
        "BR-001",
        "in_service",
        reason="PQ passed",
        qualification=Qualification(pq=TODAY),
    )
    change, signature = site.new_records(before)
    assert isinstance(change, EquipmentStatusChanged) and isinstance(signature, Signature)
    assert signature.meaning == Meaning.APPROVED
    row = _row(site)
    assert row is not None and (row.status, row.pq_on) == ("in_service", TODAY)
    record_calibration(
        site.store,
        site.sign_in("carol"),
        "BR-001",
        performed_on=TODAY,
        result="pass",
        due=TODAY + 365 * DAY,
        certificate="CAL-1",
    )
    assert _row(site).calibration_due == TODAY + 365 * DAY  # type: ignore[union-attr]
    assert isinstance(site.records()[-2], CalibrationRecorded)
    record_calibration(
        site.store,
        site.sign_in("carol"),
        "BR-001",
        performed_on=TODAY,
        result="fail",
        due=TODAY + 365 * DAY,
    )
    assert _row(site).status == "out_of_service"  # type: ignore[union-attr]
    with Journal(site.store.location, create=False) as journal:
        report = verify_journal(journal, site_replay=replay_problem)
    assert (report.site.intact, report.site.reason) == (True, None)


@pytest.mark.parametrize(
    ("performed", "due", "message"),
    [
        (TODAY, TODAY - DAY, "is before --performed"),
        (TODAY + 2 * DAY, TODAY + 9 * DAY, "is in the future"),
    ],
)
def test_bad_calibration_dates_write_nothing(
    site: Site, performed: date, due: date, message: str
) -> None:
    _add(site)
    before = site.head()
    with pytest.raises(BadInputError, match=message):
        record_calibration(
            site.store,
            site.sign_in("carol"),
            "BR-001",
            performed_on=performed,
            result="pass",
            due=due,
        )
    assert site.head() == before


def test_retired_stays_retired(site: Site) -> None:
    _add(site)
    set_status(site.store, site.sign_in("carol"), "BR-001", "retired", reason="end of life")
    with pytest.raises(EquipmentRefusedError, match="retired"):
        set_status(site.store, site.sign_in("carol"), "BR-001", "out_of_service", reason="x")


def test_qualification_in_the_future_writes_nothing(site: Site) -> None:
    before = site.head()
    with pytest.raises(BadInputError, match=r"--pq .* is in the future"):
        _add(site, qualification=Qualification(pq=TODAY + DAY))
    assert site.head() == before
    _add(site)
    before = site.head()
    with pytest.raises(BadInputError, match=r"--iq .* is in the future"):
        set_status(
            site.store,
            site.sign_in("carol"),
            "BR-001",
            "out_of_service",
            reason="x",
            qualification=Qualification(iq=TODAY + DAY),
        )
    assert site.head() == before
