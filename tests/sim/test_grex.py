"""A G-Rex-type static vessel beside the rocking bag (issue 14, design §3.7)."""

from __future__ import annotations

import pytest

from cellauto import Field, MaterialInput, Params, Protocol, Run
from cellauto.errors import OutOfRangeError
from cellauto.instruments import Bioreactor, CellCounter, Reagent, Setpoints, StaticCultureVessel
from cellauto.records import payloads as rec
from cellauto.sim.grex import SimGRex
from cellauto.sim.simulate import simulate


class P(Params):
    coi: str = Field("W123426A1B2C3", pattern=r"^[A-Z0-9]{13}$")
    rock: bool = False


def _protocol(vessel: type[Bioreactor]) -> Protocol[P]:
    protocol: Protocol[P] = Protocol(
        f"static-{vessel.__name__}",
        version="0.1.0",
        params=P,
        inputs=[MaterialInput(name="cells", identity_param="coi", material="t_cells")],
    )

    async def culture(run, bioreactor, counter):  # type: ignore[no-untyped-def]
        """Seed 2e8 T cells, activate, feed, count on day 10."""
        await bioreactor.set_setpoints(Setpoints(temperature_c=37.0, ph=7.2))
        if run.params.rock:
            await bioreactor.set_setpoints(Setpoints(rocking_rate_rpm=10.0))
        await bioreactor.seed("cells", 20.0, 380.0)
        await bioreactor.add_reagent(Reagent(name="CD3/CD28", kind="activation", volume_ml=1.0))
        for day in range(1, 11):
            await run.sleep(hours=24)
            if day in (4, 6):
                await bioreactor.feed(200.0)
        values = await bioreactor.read_process_values()
        run.set_value("ph", values.ph if values.ph is not None else -1.0)
        run.set_value("lactate", values.lactate_mmol_per_l, unit="mM")
        if vessel is StaticCultureVessel:
            await bioreactor.reduce_volume(100.0)
        sample = await bioreactor.draw_sample(0.5)
        count = await counter.count(sample, dilution=10.0)
        volume = (await bioreactor.read_process_values()).culture_volume_ml
        run.set_value("viable cells", count.viable_cells_per_ml * volume, unit="cells")
        run.set_value("volume", volume, unit="mL")

    hints = {"run": Run[P], "bioreactor": vessel, "counter": CellCounter, "return": None}
    culture.__annotations__ = hints  # the vessel asked for decides what the line gives
    protocol.step(unit_procedure="Culture", resume="rerun", max_duration_h=300)(culture)
    return protocol


def test_a_static_vessel_is_given_the_g_rex_and_a_bioreactor_the_bag() -> None:
    grex = simulate(_protocol(StaticCultureVessel), seed=1, patient="typical")
    bag = simulate(_protocol(Bioreactor), seed=1, patient="typical")
    assert grex.exit_status == bag.exit_status == "complete", grex.outcome.reason
    assert grex.sim.equipment["bioreactor"].__class__ is SimGRex
    assert grex.values["ph"] == -1.0  # no probe
    # fed, not perfused: lactate outruns the bag's CO2 control, its pH falls below 7.2
    assert bag.values["lactate"] > 20 and bag.values["ph"] < 7.0
    assert grex.values["volume"] == pytest.approx(100.0, abs=1.0)  # supernatant aspirated
    # capacity per membrane area: 2.5e7 per cm2 of 100 cm2, not per mL
    assert grex.values["viable cells"] < 2.6e9
    assert grex.values["viable cells"] > 1.0e9


def test_a_static_vessel_does_not_rock() -> None:
    run = simulate(_protocol(StaticCultureVessel), seed=1, patient="typical", params={"rock": True})
    assert run.exit_status != "complete"
    responses = [r for r in run.of_kind(rec.InstrumentResponse) if not r.ok]
    assert any(r.error is not None and "does not rock" in str(r.error) for r in responses)


@pytest.mark.anyio
async def test_reduce_volume_keeps_the_cells() -> None:
    from cellauto.clock import Clock
    from cellauto.sim.simulate import DEFAULT_SIM_START
    from cellauto.sim.starting_material import material_container
    from cellauto.sim.world import SimWorld

    world = SimWorld(Clock(DEFAULT_SIM_START), seed=1)
    world.add_container(material_container("cells", "t_cells"))
    grex = SimGRex(world)
    await grex.seed("cells", 10.0, 390.0)
    assert grex.culture is not None
    before = grex.culture.cells.viable_cells
    await grex.reduce_volume(50.0)
    assert grex.culture.cells.volume_ml == 50.0
    assert grex.culture.cells.viable_cells == pytest.approx(before, rel=0.01)
    with pytest.raises(OutOfRangeError):
        await grex.reduce_volume(5.0)
