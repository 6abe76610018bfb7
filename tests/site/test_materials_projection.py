"""The materials, lots and equipment projections: site records become rows, read back
confirmed against the record that set them; an edited row is refused."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from cellauto.errors import JournalError
from cellauto.records import Journal, verify_journal
from cellauto.records import backend as db
from cellauto.records.backend import Location
from cellauto.records.site_payloads_mat import (
    CalibrationRecorded,
    EquipmentAdded,
    EquipmentStatus,
    EquipmentStatusChanged,
    LotAdjusted,
    LotReceived,
    LotRejected,
    LotReleased,
    MaterialDefined,
    MaterialKindName,
    Qualification,
    Storage,
    Unit,
)
from cellauto.site.materials_read import (
    list_lots,
    lot_state,
    read_equipment,
    read_lot,
    read_material,
    snapshot,
    usable_lots,
)
from cellauto.site.store import open_site_store
from cellauto.testing import raw_connection
from tests.records.site_factory import TERMINAL

WHO = {"by": "sup", "reason": "test", "terminal": TERMINAL}


def _site(path: Path) -> None:
    with open_site_store(path, create=True) as store, store.transaction() as tx:
        tx.append(
            MaterialDefined(
                **WHO,
                material="CAR lentiviral vector",
                material_kind=MaterialKindName.VECTOR,
                unit=Unit.ML,
                storage=Storage.ULT,
                attributes=["titer_tu_per_ml"],
            )
        )
        for lot, expires, quantity in (
            ("v/L1", "2027-01-31", 12_500),
            ("v/L2", "2026-12-20", 5_000),
        ):
            tx.append(
                LotReceived(
                    **WHO,
                    lot_id=lot,
                    material="CAR lentiviral vector",
                    supplier="Vectors Inc",
                    supplier_lot=lot[2:],
                    received_on=date(2026, 12, 1),
                    expires_on=date.fromisoformat(expires),
                    quantity_milli=quantity,
                    attributes={"titer_tu_per_ml": 1.0e8},
                )
            )
            tx.append(LotReleased(**{**WHO, "by": "qa"}, lot_id=lot))
        tx.append(LotAdjusted(**WHO, lot_id="v/L1", delta_milli=-500, cause="spill"))
        tx.append(
            EquipmentAdded(
                **WHO,
                asset="BR-001",
                interface="Bioreactor",
                vendor="Simulated",
                model="SimBioreactor",
                serial="BR-7730",
                qualification=Qualification(iq=date(2026, 1, 5), oq=date(2026, 1, 6)),
                calibration_due=date(2027, 6, 30),
            )
        )
        tx.append(
            EquipmentStatusChanged(
                **WHO,
                asset="BR-001",
                status=EquipmentStatus.IN_SERVICE,
                qualification=Qualification(pq=date(2026, 1, 9)),
            )
        )
        tx.append(
            CalibrationRecorded(
                **WHO,
                asset="BR-001",
                performed_on=date(2026, 12, 2),
                result="pass",
                due=date(2027, 12, 2),
            )
        )


def test_records_become_rows_read_back_confirmed(journal_path: Location) -> None:
    _site(journal_path)
    with open_site_store(journal_path) as store, store.reading() as conn:
        material = read_material(conn, "CAR lentiviral vector")
        assert material is not None and material.attributes == ("titer_tu_per_ml",)
        lot = read_lot(conn, "v/L1")
        assert lot is not None
        assert (lot.status, lot.received_milli, lot.remaining_milli) == ("released", 12_500, 12_000)
        assert lot.received_by == "sup" and lot.attributes == {"titer_tu_per_ml": 1.0e8}
        assert [row.lot_id for row in list_lots(conn, "CAR lentiviral vector")] == ["v/L2", "v/L1"]
        through = date(2026, 12, 25)
        assert [
            r.lot_id
            for r in usable_lots(conn, "CAR lentiviral vector", through=through, need_milli=6_000)
        ] == ["v/L1"]
        assert snapshot(lot).site is not None
        assert read_lot(conn, "v/nope") is None
        equipment = read_equipment(conn, asset="BR-001")
        assert equipment is not None
        assert equipment.status == "in_service" and equipment.pq_on == date(2026, 1, 9)
        assert equipment.calibration_due == date(2027, 12, 2)
        assert read_equipment(conn, serial=("Simulated", "SimBioreactor", "BR-7730")) == equipment
    with Journal(journal_path, create=False) as journal:
        report = verify_journal(journal)
    assert report.intact, report


def test_lot_states_are_computed_on_the_day_asked() -> None:
    from cellauto.site.materials_read import LotRow

    lot = LotRow(
        "x",
        "m",
        "s",
        "l",
        date(2026, 1, 1),
        date(2026, 12, 31),
        "released",
        "a",
        1000,
        1000,
        0,
        {},
        0,
        "0" * 64,
    )
    assert lot_state(lot, date(2026, 12, 31)) == "released"
    assert lot_state(lot, date(2027, 1, 1)) == "expired"
    assert lot_state(lot._replace(remaining_milli=0), date(2026, 6, 1)) == "depleted"
    assert lot_state(lot._replace(status="rejected"), date(2027, 6, 1)) == "rejected"
    assert lot_state(lot._replace(status="quarantine"), date(2026, 6, 1)) == "quarantine"


def test_a_failed_calibration_takes_the_instrument_out_of_service(journal_path: Location) -> None:
    _site(journal_path)
    with open_site_store(journal_path) as store:
        with store.transaction() as tx:
            tx.append(
                CalibrationRecorded(
                    **WHO,
                    asset="BR-001",
                    performed_on=date(2026, 12, 3),
                    result="fail",
                    due=date(2027, 12, 3),
                )
            )
        with store.reading() as conn:
            row = read_equipment(conn, asset="BR-001")
    assert row is not None and row.status == "out_of_service"
    assert row.calibration_due == date(2027, 12, 2)


def test_a_rejected_lot_row_edited_back_to_released_is_refused(journal_path: Location) -> None:
    _site(journal_path)
    with open_site_store(journal_path) as store, store.transaction() as tx:
        tx.append(LotRejected(**{**WHO, "by": "qa"}, lot_id="v/L2", cause="CoA titre out of spec"))
    conn = raw_connection(journal_path)
    # Someone points the row back at its release record, with that record's true hash.
    conn.execute(
        "UPDATE lots SET status = 'released', source_seq = 4, source_hash ="
        " (SELECT hash FROM site_records WHERE seq = 4) WHERE lot_id = 'v/L2'"
    )
    conn.execute(
        "UPDATE lots SET source_seq = 2, source_hash ="
        " (SELECT hash FROM site_records WHERE seq = 2) WHERE lot_id = 'v/L1'"
    )
    conn.close()
    with open_site_store(journal_path) as store, store.reading() as conn:
        with pytest.raises(JournalError, match=r"lots table edited: row 'v/L1'"):
            read_lot(conn, "v/L1")
        with pytest.raises(JournalError, match=r"row 'v/L2' status 'released' but site record"):
            read_lot(conn, "v/L2")
        with pytest.raises(JournalError, match=r"row 'v/L2'"):
            usable_lots(conn, "CAR lentiviral vector", through=date(2026, 12, 2), need_milli=1)


@pytest.mark.parametrize(
    ("table", "index"),
    [
        ("lots", "site_records_by_lot_id"),
        ("materials", "site_records_by_material"),
        ("equipment", "site_records_by_asset"),
    ],
)
def test_confirming_a_row_reads_its_own_site_records_by_index(
    journal_path: Location, table: str, index: str
) -> None:
    """A lot is confirmed against that lot's records only, not by scanning every site
    record (sign-ins, signatures, other lots): the cost no longer grows with the site."""
    from cellauto.records._schema import site_row_filter

    _site(journal_path)
    query = f"SELECT seq FROM site_records WHERE {site_row_filter(table)}"
    with open_site_store(journal_path) as store, store.reading() as conn:
        if db.is_postgresql(conn):
            # a few rows: the planner would scan them; what matters is that it can use the
            # expression index for this filter
            conn.execute("SET LOCAL enable_seqscan = off")
            plan = conn.execute(f"EXPLAIN {query}", ("x",)).fetchall()
        else:
            plan = conn.execute(f"EXPLAIN QUERY PLAN {query}", ("x",)).fetchall()
    assert any(index in str(step) for step in plan), plan
