"""The bill of materials checked before a run starts: every refusal writes nothing."""

from __future__ import annotations

from contextlib import closing
from datetime import timedelta

import pytest

from cellauto.errors import MaterialRefusedError
from cellauto.protocols import Runner
from cellauto.protocols.bom_check import check_bom
from cellauto.protocols.params import Params
from cellauto.records import Journal
from cellauto.records.backend import Location
from cellauto.records.site_payloads_mat import LotAdjusted, Unit
from cellauto.site.view import FileSite
from tests.protocols.materials_kit import (
    LINE,
    START,
    TODAY,
    WHO,
    SitePayloads,
    define,
    file_site,
    il2_protocol,
    lot,
    reject,
    rows,
    sim_site,
)

pytestmark = pytest.mark.anyio


async def _refused(
    db_location: Location, records: SitePayloads, message: str, **prepare: object
) -> str:
    """Preparing a run against a file site holding ``records`` is refused: nothing written."""
    path = db_location
    file_site(path, records)
    before = rows(path, "SELECT seq FROM site_records")
    with Journal(path) as journal, closing(FileSite(path)) as site:
        runner = Runner(journal, clock_origin=START)
        with pytest.raises(MaterialRefusedError, match=message) as refused:
            runner.prepare(il2_protocol(), LINE, site=site, **prepare)  # type: ignore[arg-type]
    assert rows(path, "SELECT run_id FROM records") == []
    assert rows(path, "SELECT run_id FROM run_owners") == []
    assert rows(path, "SELECT run_id FROM lot_reservations") == []
    assert rows(path, "SELECT reserved_milli FROM lots WHERE reserved_milli != 0") == []
    assert rows(path, "SELECT seq FROM site_records") == before
    return str(refused.value)


async def test_expired_lot_refused_nothing_written(db_location: Location) -> None:
    message = await _refused(
        db_location,
        [define(), *lot("il2/L1", expires_on=TODAY - timedelta(days=1))],
        "material 'IL-2': no released lot unexpired through",
    )
    assert f"lot il2/L1 expired {(TODAY - timedelta(days=1)).isoformat()}" in message


async def test_lot_expiring_before_the_planned_end_refused() -> None:
    site = sim_site([define(), *lot("il2/L1", expires_on=TODAY + timedelta(days=1))])
    with pytest.raises(MaterialRefusedError, match="before the run's planned end"):
        check_bom(il2_protocol(duration_h=72), Params(), site, start=START)
    assert check_bom(il2_protocol(duration_h=12), Params(), site, start=START) is not None


async def test_quarantined_lot_refused(db_location: Location) -> None:
    message = await _refused(db_location, [define(), *lot("il2/L1", release=False)], "IL-2")
    assert "lot il2/L1 quarantine" in message


async def test_rejected_lot_refused(db_location: Location) -> None:
    message = await _refused(db_location, [define(), *lot("il2/L1"), reject("il2/L1")], "IL-2")
    assert "lot il2/L1 rejected" in message


async def test_depleted_lot_refused(db_location: Location) -> None:
    used_up = LotAdjusted(**WHO, lot_id="il2/L1", delta_milli=-10_000, cause="spilled")
    message = await _refused(db_location, [define(), *lot("il2/L1"), used_up], "IL-2")
    assert "lot il2/L1 depleted" in message


async def test_not_enough_quantity_names_free_and_needed(db_location: Location) -> None:
    message = await _refused(db_location, [define(), *lot("il2/L1", quantity_ml=1.5)], "IL-2")
    assert "with 2 mL free" in message
    assert "lot il2/L1 1.5 mL free" in message


async def test_unknown_lot_refused(db_location: Location) -> None:
    await _refused(
        db_location,
        [define(), *lot("il2/L1")],
        "lot 'il2/L9999': no such lot on this site",
        lots={"IL-2": "il2/L9999"},
    )


async def test_an_assigned_lot_of_another_material_refused(db_location: Location) -> None:
    records = [define(), *lot("il2/L1"), define("IL-15"), *lot("il15/L1", material="IL-15")]
    await _refused(
        db_location,
        records,
        "lot 'il15/L1' is a lot of 'IL-15', not of 'IL-2'",
        lots={"IL-2": "il15/L1"},
    )


async def test_an_assigned_rejected_lot_refused_naming_it(db_location: Location) -> None:
    records = [define(), *lot("il2/L1"), *lot("il2/L2"), reject("il2/L2")]
    await _refused(
        db_location, records, r"lot 'il2/L2' \(IL-2\): rejected", lots={"IL-2": "il2/L2"}
    )


async def test_a_lot_for_a_material_not_in_the_bom_refused(db_location: Location) -> None:
    await _refused(
        db_location, [define(), *lot("il2/L1")], "declares no material 'IL-7'", lots={"IL-7": "x"}
    )


async def test_material_not_defined_refused(db_location: Location) -> None:
    await _refused(db_location, [define("IL-15")], r"material 'IL-2': not defined on this site")


async def test_unit_mismatch_refused(db_location: Location) -> None:
    await _refused(
        db_location,
        [define(unit=Unit.IU)],
        "material 'IL-2': the protocol counts mL, the site defines IU",
    )


async def test_no_site_refused(db_location: Location) -> None:
    with (
        Journal(db_location) as journal,
        pytest.raises(MaterialRefusedError, match="declares 1 material; no site"),
    ):
        Runner(journal, clock_origin=START).prepare(il2_protocol(), LINE)
    assert rows(db_location, "SELECT run_id FROM records") == []


async def test_first_expiry_first_and_an_assigned_lot_wins() -> None:
    later = lot("il2/L2", expires_on=TODAY + timedelta(days=300))
    site = sim_site([define(), *later, *lot("il2/L1")])
    protocol = il2_protocol()
    plan = check_bom(protocol, Params(), site, start=START)
    assert plan is not None
    assert [r.lot.lot_id for r in plan.reservations] == ["il2/L1"]
    assert plan.reservations[0].quantity_milli == 2000
    assert plan.reservations[0].basis == "2 mL per batch"
    plan = check_bom(protocol, Params(), site, start=START, assigned={"IL-2": "il2/L2"})
    assert plan is not None and plan.reservations[0].lot.lot_id == "il2/L2"


async def test_a_lot_reserved_by_another_run_is_not_free(db_location: Location) -> None:
    path = db_location
    file_site(path, [define(), *lot("il2/L1", quantity_ml=3.0)])
    with Journal(path) as journal, closing(FileSite(path)) as site:
        runner = Runner(journal, clock_origin=START)
        first = runner.prepare(il2_protocol(), LINE, site=site)
        with pytest.raises(MaterialRefusedError, match=r"1 mL free \(reserved 2 by other runs\)"):
            runner.prepare(il2_protocol(), LINE, site=site)
    assert rows(path, "SELECT run_id, reserved_milli, open FROM lot_reservations") == [
        (first.run_id, 2000, 1)
    ]
    assert rows(path, "SELECT reserved_milli FROM lots") == [(2000,)]


async def test_a_lot_expires_at_the_end_of_its_day_where_the_site_is() -> None:
    """At 03:00 UTC on 1 December it is still 30 November in Los Angeles: a lot whose last
    day is 30 November may be used there, not on a site that keeps UTC."""
    from datetime import UTC, datetime

    from cellauto.records.site_payloads import PolicySet, SitePolicy

    evening = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    last_day = evening.date() - timedelta(days=1)
    records = [define(), *lot("il2/L1", expires_on=last_day)]
    los_angeles = PolicySet(**WHO, old=None, new=SitePolicy(time_zone="America/Los_Angeles"))
    site = sim_site([los_angeles, *records], now=evening)
    assert check_bom(il2_protocol(duration_h=0.1), Params(), site, start=evening) is not None
    with pytest.raises(MaterialRefusedError, match=f"lot il2/L1 expired {last_day}"):
        check_bom(il2_protocol(duration_h=0.1), Params(), sim_site(records, evening), start=evening)
