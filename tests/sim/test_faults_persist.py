"""Faults persist on the instrument they were armed on (issue 14, design §2)."""

from __future__ import annotations

import warnings

import pytest

from cellauto import Field, MaterialInput, Params, Protocol, Run
from cellauto.instruments import Bioreactor, CellCounter, Reagent, Setpoints
from cellauto.sim.faults import (
    CommandFailure,
    Contamination,
    Disconnect,
    SimFaultWarning,
    TemperatureExcursion,
)
from cellauto.sim.simulate import SimulatedRun, simulate


class P(Params):
    coi: str = Field("W123426A1B2C3", pattern=r"^[A-Z0-9]{13}$")


two_phase = Protocol(
    "two-phase",
    version="0.1.0",
    params=P,
    inputs=[MaterialInput(name="cells", identity_param="coi", material="t_cells")],
)


async def _phase(run: Run[P], bioreactor: Bioreactor, counter: CellCounter, days: int, tag: str):
    for day in range(1, days + 1):
        await run.sleep(hours=24)
        count = await counter.count(await bioreactor.draw_sample(0.5))
        values = await bioreactor.read_process_values()
        run.set_value(f"{tag} day {day} viability", count.viability_pct, unit="%")
        run.set_value(f"{tag} day {day} temperature", values.temperature_c, unit="°C")


@two_phase.step(unit_procedure="Culture", resume="rerun", max_duration_h=400)
async def culture(run: Run[P], bioreactor: Bioreactor, counter: CellCounter) -> None:
    """Phase 1 (3 days), harvest, phase 2 seeded from the harvest (6 days)."""
    await bioreactor.set_setpoints(Setpoints(temperature_c=37.0))
    await bioreactor.seed("cells", 50.0, 200.0)
    await bioreactor.add_reagent(Reagent(name="CD3/CD28", kind="activation", volume_ml=1.0))
    await _phase(run, bioreactor, counter, 3, "phase 1")
    await bioreactor.harvest("phase 1 harvest")
    await bioreactor.seed("phase 1 harvest", 100.0, 400.0)
    await bioreactor.add_reagent(Reagent(name="CD3/CD28", kind="activation", volume_ml=1.0))
    await _phase(run, bioreactor, counter, 6, "phase 2")


def _run(*faults: object, **kwargs: object) -> SimulatedRun:
    with warnings.catch_warnings():
        warnings.simplefilter("error", SimFaultWarning)
        return simulate(
            two_phase, seed=1, patient="typical", faults={"bioreactor": list(faults)}, **kwargs
        )


@pytest.fixture(scope="module")
def clean() -> SimulatedRun:
    return _run()


def test_contamination_of_the_second_culture_acts(clean: SimulatedRun) -> None:
    # phase 2 runs from about 73 h to 218 h: 150 h is its fourth day
    run = _run(Contamination(at_h=150))
    assert run.values["phase 2 day 3 viability"] == clean.values["phase 2 day 3 viability"]
    assert run.values["phase 2 day 6 viability"] < 20
    assert clean.values["phase 2 day 6 viability"] > 80
    (outcome,) = run.faults
    assert outcome.took_effect and outcome.never is None
    assert outcome.fired[0].effect == "culture contaminated"
    assert outcome.fired[0].at_h == pytest.approx(150)


def test_temperature_excursion_on_the_second_culture_acts(clean: SimulatedRun) -> None:
    run = _run(TemperatureExcursion(at_h=150, delta_c=4.0, duration_h=30))
    # day 4 of phase 2 is read at about 169 h: inside the window
    assert run.values["phase 2 day 4 temperature"] == pytest.approx(41.0, abs=0.3)
    assert clean.values["phase 2 day 4 temperature"] == pytest.approx(37.0, abs=0.3)
    assert run.values["phase 2 day 6 viability"] < clean.values["phase 2 day 6 viability"]
    (outcome,) = run.faults
    assert [e.effect for e in outcome.fired] == ["culture +4.0 °C"]


def test_a_fault_after_the_run_is_reported_never_fired() -> None:
    with pytest.warns(SimFaultWarning, match="after the run ended"):
        run = simulate(
            two_phase, seed=1, patient="typical", faults={"bioreactor": [Contamination(at_h=900)]}
        )
    (outcome,) = run.faults
    assert not outcome.took_effect
    assert outcome.never is not None and "starts at 900.0 h" in outcome.never


def test_an_excursion_while_the_bag_is_empty_acts_on_nothing(clean: SimulatedRun) -> None:
    # the bag is seeded 10 min after the start: a 6 min excursion at 0 h meets no culture
    with pytest.warns(SimFaultWarning, match=r"the bag held no culture from 0\.0 h to 0\.1 h"):
        run = simulate(
            two_phase,
            seed=1,
            patient="typical",
            faults={"bioreactor": [TemperatureExcursion(at_h=0.0, duration_h=0.1)]},
        )
    (outcome,) = run.faults
    assert not outcome.took_effect
    assert run.values == clean.values


def test_generic_faults_are_marked_when_met(clean: SimulatedRun) -> None:
    with pytest.warns(SimFaultWarning, match="CellCounter .*disconnect never took effect"):
        run = simulate(
            two_phase,
            seed=1,
            patient="typical",
            faults={"counter": [Disconnect(at_h=500.0)], "bioreactor": [CommandFailure(at_h=0.0)]},
        )
    outcomes = {o.fault.kind: o for o in run.faults}
    assert outcomes["command_failure"].took_effect
    assert "failed (1 of 1)" in outcomes["command_failure"].fired[0].effect
    assert outcomes["disconnect"].never is not None


def test_a_label_fault_is_marked_per_label_it_spoils() -> None:
    from datetime import UTC, datetime

    import anyio

    from cellauto.clock import Clock, virtual_loop_factory
    from cellauto.sim.faults import MisprintLabel
    from cellauto.sim.printer import SimZplPrinter
    from cellauto.sim.world import SimWorld
    from tests.sim.test_printer import LABEL, to_zpl

    async def main() -> list[str]:
        world = SimWorld(Clock(datetime(2026, 1, 5, tzinfo=UTC)), seed=1)
        printer = SimZplPrinter(world)
        printer.inject(MisprintLabel(data="=G12349865432102", count=2))
        printer.inject(MisprintLabel(at_h=50.0, data="=G12349865432102"))
        zpl = to_zpl(LABEL)
        for index in range(3):
            await printer.print_label(zpl, f"bag {index}")
        outcomes = printer.close_faults(world.elapsed_h())
        assert outcomes[1].never is not None and "starts at 50.0 h" in outcomes[1].never
        return [e.effect for e in outcomes[0].fired]

    effects = anyio.run(main, backend_options={"loop_factory": virtual_loop_factory})
    assert effects == ["misprinted din label (1 of 2)", "misprinted din label (2 of 2)"]


def test_an_ln2_level_drop_is_marked_when_due_even_unlooked_at() -> None:
    from datetime import UTC, datetime

    import anyio

    from cellauto.clock import Clock, virtual_loop_factory
    from cellauto.sim.faults import LN2LevelDrop
    from cellauto.sim.storage import SimCryoStorage
    from cellauto.sim.world import SimWorld

    async def main() -> tuple[list[str], str | None]:
        world = SimWorld(Clock(datetime(2026, 1, 5, tzinfo=UTC)), seed=1)
        storage = SimCryoStorage(world)
        storage.inject(LN2LevelDrop(at_h=2.0, drop_pct=30.0))
        storage.inject(LN2LevelDrop(at_h=9.0, drop_pct=30.0))
        await anyio.sleep(3 * 3600)  # nobody reads the storage
        due, late = storage.close_faults(world.elapsed_h())
        return [f"{e.at_h:.1f} {e.effect}" for e in due.fired], late.never

    fired, never = anyio.run(main, backend_options={"loop_factory": virtual_loop_factory})
    assert fired == ["2.0 LN2 level -30 points"]
    assert never is not None and "starts at 9.0 h" in never
