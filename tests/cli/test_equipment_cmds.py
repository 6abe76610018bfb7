"""``cellauto equipment``: add, status, calibrate, list (signed; refusals journaled, exit 2)."""

from __future__ import annotations

import json
from datetime import date, timedelta

from cellauto.records.site_chain import read_site_records
from cellauto.records.site_payloads import Signature
from cellauto.records.site_payloads_mat import EquipmentActRefused
from cellauto.site.history import reading_journal
from tests.cli.people import People, own, people, staffed

__all__ = ["people", "staffed"]  # fixtures

TODAY = date.today()
PAST = (TODAY - timedelta(days=10)).isoformat()
DUE = (TODAY + timedelta(days=365)).isoformat()


def _site(people: People) -> list[object]:
    with reading_journal(people.db) as conn:
        return [r.payload for r in read_site_records(conn)]


def _add(people: People, *extra: str, as_user: str = "carol", asset: str = "BR-001") -> object:
    return people(
        "equipment",
        "add",
        asset,
        "--interface",
        "Bioreactor",
        "--vendor",
        "Acme",
        "--model",
        "X1",
        "--serial",
        f"S-{asset}",
        *extra,
        "--as",
        as_user,
        stdin=[own(as_user)],
    )


def test_add_qualify_calibrate_list(staffed: People) -> None:
    done = _add(staffed, "--iq", PAST, "--oq", PAST, "--calibration-due", DUE)
    assert done.code == 0, done.err  # type: ignore[attr-defined]
    assert "BR-001 added (qualifying)" in done.out  # type: ignore[attr-defined]
    assert isinstance(_site(staffed)[-1], Signature)
    done = staffed(
        "equipment", "status", "BR-001", "in_service", "--pq", PAST, "--reason", "PQ passed",
        "--as", "carol", stdin=[own("carol")],
    )  # fmt: skip
    assert done.code == 0, done.err
    done = staffed(
        "equipment", "calibrate", "BR-001", "--performed", TODAY.isoformat(), "--result", "pass",
        "--due", DUE, "--certificate", "CAL-7", "--as", "carol", stdin=[own("carol")],
    )  # fmt: skip
    assert done.code == 0, done.err
    assert f"calibrated through {DUE}" in done.out
    listed = staffed("equipment", "list")
    assert listed.code == 0
    assert listed.lines[1].split()[:7] == [
        "BR-001", "Bioreactor", "Acme", "X1", "S-BR-001", "in_service", DUE,
    ]  # fmt: skip
    (item,) = json.loads(staffed("equipment", "list", "--json").out)
    assert (item["status"], item["pq"], item["calibration_overdue"]) == ("in_service", PAST, False)


def test_operator_cannot_add(staffed: People) -> None:
    done = _add(staffed, as_user="alice")
    assert done.code == 2  # type: ignore[attr-defined]
    assert "alice (operator) may not add BR-001" in done.err  # type: ignore[attr-defined]
    refused = _site(staffed)[-1]
    assert isinstance(refused, EquipmentActRefused) and refused.act == "add"


def test_operator_cannot_calibrate(staffed: People) -> None:
    assert _add(staffed).code == 0  # type: ignore[attr-defined]
    done = staffed(
        "equipment", "calibrate", "BR-001", "--performed", TODAY.isoformat(), "--result", "pass",
        "--due", DUE, "--as", "alice", stdin=[own("alice")],
    )  # fmt: skip
    assert done.code == 2
    assert "equipment.manage" in done.err
    refused = _site(staffed)[-1]
    assert isinstance(refused, EquipmentActRefused)
    assert (refused.act, refused.cause) == ("calibrate", "permission")


def test_in_service_without_pq_refused_exit_2(staffed: People) -> None:
    assert _add(staffed, "--iq", PAST, "--oq", PAST).code == 0  # type: ignore[attr-defined]
    done = staffed(
        "equipment", "status", "BR-001", "in_service", "--reason", "go",
        "--as", "carol", stdin=[own("carol")],
    )  # fmt: skip
    assert done.code == 2
    assert "BR-001 cannot go in service: PQ not recorded" in done.err
    refused = _site(staffed)[-1]
    assert isinstance(refused, EquipmentActRefused) and refused.cause == "not_qualified"


def test_unknown_asset_refused(staffed: People) -> None:
    done = staffed(
        "equipment", "status", "BR-404", "out_of_service", "--reason", "leak",
        "--as", "carol", stdin=[own("carol")],
    )  # fmt: skip
    assert done.code == 2
    assert "no instrument 'BR-404' in the registry" in done.err


def test_bad_dates_write_nothing(staffed: People) -> None:
    assert _add(staffed).code == 0  # type: ignore[attr-defined]
    before = len(_site(staffed))
    done = staffed(
        "equipment", "calibrate", "BR-001", "--performed", TODAY.isoformat(), "--result", "pass",
        "--due", PAST, "--as", "carol", stdin=[own("carol")],
    )  # fmt: skip
    assert done.code == 2
    assert "is before --performed" in done.err
    assert len(_site(staffed)) == before
    done = staffed("equipment", "calibrate", "BR-001", "--performed", "05/12/2026")
    assert done.code == 2


def test_list_flags_calibration_overdue(staffed: People) -> None:
    assert _add(staffed, "--calibration-due", PAST).code == 0  # type: ignore[attr-defined]
    listed = staffed("equipment", "list")
    assert listed.lines[1].endswith("calibration overdue")
    (item,) = json.loads(staffed("equipment", "list", "--json").out)
    assert item["calibration_overdue"] is True


def test_list_of_an_empty_registry(staffed: People) -> None:
    listed = staffed("equipment", "list")
    assert listed.code == 0 and "no instruments registered" in listed.out
