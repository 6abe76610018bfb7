"""The simulated site's lots: one released lot per material of the BOM, deterministic."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cellauto.protocols.loader import load_protocol
from cellauto.protocols.params import build_params
from cellauto.sim.line import sim_line_for_protocol
from cellauto.sim.site_for_run import simulated_site
from cellauto.sim.site_materials import sim_lot_id
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
