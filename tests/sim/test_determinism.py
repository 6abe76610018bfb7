"""Determinism of the culture models (issue 14, design §6.1)."""

from __future__ import annotations

import pytest

from cellauto import Field, MaterialInput, Params, Protocol, Run
from cellauto.instruments import Bioreactor, CellCounter, Reagent, Setpoints
from cellauto.sim.simulate import simulate


class P(Params):
    coi: str = Field("W123426A1B2C3", pattern=r"^[A-Z0-9]{13}$")
    watch_min: float = 15.0


watched = Protocol(
    "watched",
    version="0.1.0",
    params=P,
    inputs=[MaterialInput(name="cells", identity_param="coi", material="apheresis")],
)


@watched.step(unit_procedure="Culture", resume="rerun", max_duration_h=200)
async def culture(run: Run[P], bioreactor: Bioreactor, counter: CellCounter) -> None:
    """Seed, activate, read process values every ``watch_min`` for 4 days, harvest."""
    await bioreactor.set_setpoints(Setpoints(temperature_c=37.0, ph=7.2))
    await bioreactor.seed("cells", 10.0, 290.0)
    await bioreactor.add_reagent(
        Reagent(name="CD3/CD28", kind="activation", volume_ml=1.0, agents={"IL-2": 3e4})
    )
    for _ in range(int(4 * 24 * 60 / run.params.watch_min)):
        await bioreactor.read_process_values()
        await run.sleep(minutes=run.params.watch_min)
    await bioreactor.harvest("harvest")
    cells = bioreactor.world.containers["harvest"]  # type: ignore[attr-defined]
    run.set_value("harvest viable cells", cells.viable_cells)


def _harvest(watch_min: float, seed: int = 3, patient: str = "drawn") -> float:
    run = simulate(watched, seed=seed, patient=patient, params={"watch_min": watch_min})  # type: ignore[arg-type]
    assert run.exit_status == "complete", run.outcome.reason
    return run.values["harvest viable cells"]


def test_how_often_a_protocol_looks_never_changes_the_cells() -> None:
    every_5 = _harvest(5.0)
    every_15 = _harvest(15.0)
    assert every_5 == pytest.approx(every_15, rel=1e-12)


def test_the_same_seed_gives_the_same_patient_and_cells_and_another_seed_does_not() -> None:
    assert _harvest(15.0) == _harvest(15.0)
    assert _harvest(15.0, seed=4) != _harvest(15.0)
    typical = [_harvest(15.0, seed, "typical") for seed in (3, 4)]
    assert typical[0] == pytest.approx(typical[1], rel=1e-12)  # the cells, not the noise
