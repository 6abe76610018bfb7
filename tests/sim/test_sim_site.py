"""The simulated site: a private site chain whose records carry the simulated time, read
through the same functions as a plant's site."""

from __future__ import annotations

from datetime import UTC, date, datetime

from cellauto.records.site_payloads_mat import (
    LotReceived,
    LotReleased,
    MaterialDefined,
    MaterialKindName,
    Storage,
    Unit,
)
from cellauto.sim.site import SIM_TERMINAL, SimSite
from cellauto.site.materials_read import read_lot

START = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
WHO = {"by": "sim:qa", "reason": "simulated site", "terminal": SIM_TERMINAL}


def _seed(site: SimSite) -> list[str]:
    refs = site.append(
        [
            MaterialDefined(
                **WHO,
                material="IL-2",
                material_kind=MaterialKindName.CYTOKINE,
                unit=Unit.ML,
                storage=Storage.FRIDGE,
            ),
            LotReceived(
                **WHO,
                lot_id="SIM-il-2-1",
                material="IL-2",
                supplier="simulated",
                supplier_lot="1",
                received_on=date(2026, 11, 1),
                expires_on=date(2027, 5, 1),
                quantity_milli=10_000,
            ),
            LotReleased(**WHO, lot_id="SIM-il-2-1"),
        ]
    )
    return [ref.hash for ref in refs]


def test_a_simulated_site_is_a_pure_function_of_its_inputs() -> None:
    first, second = SimSite(START), SimSite(START)
    assert _seed(first) == _seed(second)
    with first.reading() as conn:
        lot = read_lot(conn, "SIM-il-2-1")
    assert lot is not None and lot.status == "released" and lot.remaining_milli == 10_000
    with first.reading() as conn:
        (wall_ns,) = conn.execute("SELECT max(wall_time_ns) FROM site_records").fetchone()
    assert wall_ns == int(START.timestamp() * 1e9)
    assert _seed(SimSite(START.replace(hour=9))) != _seed(SimSite(START))
