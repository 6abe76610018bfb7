"""Lots reserved in the transaction that claims a run: two runs cannot count on one lot."""

from __future__ import annotations

from contextlib import closing

import pytest

from cellauto.errors import MaterialRefusedError
from cellauto.protocols import Runner
from cellauto.protocols.bom_check import check_bom, close_reservations
from cellauto.protocols.params import Params
from cellauto.records import Journal
from cellauto.records.backend import Location
from cellauto.records.material_payloads import MaterialsReserved
from cellauto.site.view import FileSite
from tests.protocols.materials_kit import (
    LINE,
    START,
    define,
    file_site,
    il2_protocol,
    lot,
    sim_site,
)
from tests.records.site_factory import rows

pytestmark = pytest.mark.anyio


async def test_two_controllers_one_lot_second_refused_nothing_written(
    db_location: Location,
) -> None:
    """Both runs pass the check (neither has reserved yet); the second claim finds the lot
    taken and rolls back whole: no owner row, no record, no reservation."""
    path = db_location
    file_site(path, [define(), *lot("il2/L1", quantity_ml=3.0)])
    protocol = il2_protocol()
    with closing(FileSite(path)) as site:
        first_plan = check_bom(protocol, Params(), site, start=START)
        second_plan = check_bom(protocol, Params(), site, start=START)
    assert first_plan is not None and second_plan is not None
    with Journal(path) as one, Journal(path) as two:
        one.begin_run("run-1", lambda: 0.0, reserve=lambda c: first_plan.reserve(c, "run-1"))
        with pytest.raises(MaterialRefusedError, match="lot 'il2/L1' could not be reserved"):
            two.begin_run("run-2", lambda: 0.0, reserve=lambda c: second_plan.reserve(c, "run-2"))
    assert rows(path, "SELECT run_id FROM run_owners") == [("run-1",)]
    assert rows(path, "SELECT run_id, reserved_milli FROM lot_reservations") == [("run-1", 2000)]
    assert rows(path, "SELECT reserved_milli FROM lots") == [(2000,)]
    assert rows(path, "SELECT run_id FROM records WHERE run_id = 'run-2'") == []


async def test_a_run_records_its_reservation_then_gives_back_what_it_did_not_use(
    db_location: Location,
) -> None:
    path = db_location
    file_site(path, [define(), *lot("il2/L1", quantity_ml=10.0)])
    with Journal(path) as journal, closing(FileSite(path)) as site:
        execution = Runner(journal, clock_origin=START).prepare(
            il2_protocol(amount_ml=2.0, uses=0), LINE, site=site
        )
        assert rows(path, "SELECT reserved_milli, remaining_milli FROM lots") == [(2000, 10_000)]
        outcome = await execution.execute()
        execution.close()
        records = journal.records(execution.run_id)
    assert outcome.exit_status == "complete"
    kinds = [r.kind for r in records]
    assert kinds[:4] == ["run_started", "materials_reserved", "release_plan", "controller_claimed"]
    reserved = [r.payload for r in records if isinstance(r.payload, MaterialsReserved)]
    assert len(reserved) == 1 and reserved[0].site == "file"
    assert reserved[0].reservations[0].lot.lot_id == "il2/L1"
    assert rows(path, "SELECT reserved_milli, remaining_milli FROM lots") == [(0, 10_000)]
    assert rows(path, "SELECT open, used_milli FROM lot_reservations") == [(0, 0)]


async def test_a_simulated_site_takes_the_reservation_not_the_file(db_location: Location) -> None:
    site = sim_site([define(), *lot("il2/L1", quantity_ml=10.0)])
    with Journal(db_location) as journal:
        execution = Runner(journal, clock_origin=START).prepare(il2_protocol(), LINE, site=site)
        with site.reading() as conn:
            assert conn.execute("SELECT reserved_milli FROM lots").fetchall() == [(2000,)]
        await execution.execute()
        execution.close()
    assert rows(db_location, "SELECT run_id FROM lot_reservations") == []
    with site.reading() as conn:
        assert conn.execute("SELECT reserved_milli, remaining_milli FROM lots").fetchall() == [
            (0, 8000)
        ]
        close_reservations(conn, "no such run")  # closing nothing changes nothing


async def test_orphan_reservation_released_by_next_claim(db_location: Location) -> None:
    """A controller that died between its claim and its first record leaves a reservation
    no run will use: the next run's check counts it free and its claim gives it back."""
    path = db_location
    file_site(path, [define(), *lot("il2/L1", quantity_ml=3.0)])
    with closing(FileSite(path)) as site:
        dead = Journal(path)
        orphan = Runner(dead, clock_origin=START).prepare(il2_protocol(), LINE, site=site)
        dead.abandon()  # the process dies before run_started
        with Journal(path) as journal:
            second = Runner(journal, clock_origin=START).prepare(il2_protocol(), LINE, site=site)
            assert rows(path, "SELECT run_id, open FROM lot_reservations ORDER BY open") == [
                (orphan.run_id, 0),
                (second.run_id, 1),
            ]
            assert rows(path, "SELECT reserved_milli FROM lots") == [(2000,)]
