"""The simulated site's lots: one released lot per material of the BOM, deterministic."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from cellauto.protocols.loader import load_protocol
from cellauto.protocols.params import build_params
from cellauto.records.backend import Location
from cellauto.sim.line import sim_line_for_protocol
from cellauto.sim.site_for_run import simulated_site
from cellauto.sim.site_materials import replay_run, sim_lot_id
from cellauto.site.materials_read import list_lots, read_material
from tests.protocols.materials_kit import START

pytestmark = pytest.mark.anyio


async def test_each_material_gets_a_released_lot_three_times_what_is_planned() -> None:
    protocol = load_protocol("protocols/car_t_autologous.py")
    params = build_params(protocol.params, {}, rehearsal=True)
    from cellauto.clock import Clock

    line = sim_line_for_protocol(protocol, params, clock=Clock(START), seed=0).line
    assert line is not None
    first = simulated_site(protocol, params, line, START)
    second = simulated_site(protocol, params, line, START)
    with first.reading() as one, second.reading() as two:
        lots = list_lots(one)
        assert lots == list_lots(two)  # a pure function of the inputs
        assert len(lots) == len(protocol.materials)
        by_material = {lot.material: lot for lot in lots}
        vector = by_material["CAR lentiviral vector"]
        assert vector.lot_id == sim_lot_id("car-t-autologous", "CAR lentiviral vector")
        assert vector.lot_id.startswith("SIM-car-lentiviral-vector-")
        assert (vector.status, vector.supplier) == ("released", "simulated")
        assert vector.expires_on == (START + timedelta(days=180)).date()
        assert vector.remaining_milli == 3 * 5000
        assert vector.attributes == {"titer_tu_per_ml": 1.0e8}
        assert by_material["CryoStor CS10"].remaining_milli == 3 * 52_500
        bag = read_material(one, "cryobag 250 mL")
        assert bag is not None and (bag.unit, bag.material_kind) == ("each", "consumable")
    first.close()
    second.close()


def test_a_resumed_runs_site_sees_the_same_remaining(db_location: Location, tmp_path: Path) -> None:
    """A simulated site seeded afresh for a resume gets the run's reservation and uses
    back (cli/run_site.resume_site): the quantities it checks are those before the crash."""
    from cellauto.sim import simulate

    path = db_location
    result = simulate("protocols/car_t_autologous.py", db=path, patient="typical")
    records = [r for r in result.records if r.kind != "run_ended"]
    cut = next(i for i, r in enumerate(records) if r.payload.kind.value == "material_consumed")
    protocol = load_protocol("protocols/car_t_autologous.py")
    assert result.sim.line is not None
    site = simulated_site(protocol, result.params, result.sim.line, START)
    replay_run(site, result.outcome.run_id, records[: cut + 1])
    tubing = sim_lot_id("car-t-autologous", "CliniMACS tubing set")
    with site.reading() as conn:
        lots = {lot.lot_id: lot for lot in list_lots(conn)}
        assert (lots[tubing].remaining_milli, lots[tubing].reserved_milli) == (2000, 0)
        vector = lots[sim_lot_id("car-t-autologous", "CAR lentiviral vector")]
        assert (vector.remaining_milli, vector.reserved_milli) == (15_000, 5000)
    site.close()
