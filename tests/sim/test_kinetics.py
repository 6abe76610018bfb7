"""Culture kinetics: cytokines support the cells they act on (issue 14, design §3.3)."""

from __future__ import annotations

import pytest

from cellauto import Field, MaterialInput, Params, Protocol, Run
from cellauto.instruments import Bioreactor, CellCounter, Reagent, Setpoints
from cellauto.sim.culture import Culture
from cellauto.sim.cytokines import Cytokines
from cellauto.sim.kinetics import CultureModel
from cellauto.sim.material import Container
from cellauto.sim.simulate import simulate


def _culture(
    kind: str = "T",
    *,
    activate: bool = True,
    full_support: bool = True,
    agents: dict[str, float] | None = None,
    to_supply: bool = False,
    perfusion_ml_per_h: float = 0.0,
    feed: bool = True,
    days: int = 9,
) -> Culture:
    """1e8 cells in 300 mL at pH 7.2, fed 100 mL a day from day 3 to 900 mL, for ``days``."""
    cells = Container(
        "bag",
        viable_cells=1e8,
        dead_cells=5e6,
        volume_ml=300.0,
        t_cell_fraction=0.95 if kind == "T" else 0.02,
        nk_fraction=0.95 if kind == "NK" else 0.02,
    )
    culture = Culture(cells, 0.0)
    culture.ph_setpoint, culture.co2_pct = 7.2, 10.0  # a rocking bag's pH control
    if activate:
        culture.activate(0.0, kind, full_support=full_support)
    if agents:
        cells.volume_ml += 1.0
        culture.add_agents(agents, 1.0, 0.0, to_supply=to_supply)
    culture.perfusion_ml_per_h = perfusion_ml_per_h
    for day in range(1, days + 1):
        culture.advance_to(24.0 * day)
        if feed and day >= 3 and cells.volume_ml < 900:
            culture.add_medium(100.0, 24.0 * day)
    return culture


def _fold(culture: Culture) -> float:
    return culture.cells.viable_cells / 1e8


IL2_100 = {"IL-2": 30_000.0}  # IU per mL of reagent: 1 mL in 301 mL is ~100 IU/mL


def test_il2_raises_the_fold_of_activated_t_cells() -> None:
    # perfused with IL-2 (or IL-7/IL-15) in the medium supply: day-9 fold 1.3-2x over none
    none = _fold(_culture(perfusion_ml_per_h=20))
    il2 = _fold(_culture(agents=IL2_100, to_supply=True, perfusion_ml_per_h=20))
    assert 1.3 < il2 / none < 2.0
    il7_15 = {"IL-7": 3000.0, "IL-15": 3000.0}
    assert 1.3 < _fold(_culture(agents=il7_15, to_supply=True, perfusion_ml_per_h=20)) / none < 2
    # one dose, fed only: it acts while it lasts (day 7), then acid limits both (day 9)
    assert 1.3 < _fold(_culture(agents=IL2_100, days=7)) / _fold(_culture(days=7)) < 2.0


def test_acid_from_lactate_lowers_ph_and_slows_growth() -> None:
    fed = _culture(days=9)  # fed only: lactate above 20 mM outruns the CO2 control
    perfused = _culture(perfusion_ml_per_h=20, days=9)
    assert fed.lactate_mmol_per_l > 18 and fed.ph() < 7.15
    assert perfused.ph() == pytest.approx(7.2, abs=0.01)
    assert _fold(perfused) > 1.2 * _fold(fed)


def test_il2_alone_hardly_divides_resting_t_cells() -> None:
    resting = _fold(_culture(activate=False))
    with_il2 = _fold(_culture(activate=False, agents=IL2_100))
    assert resting < 1.0  # no stimulus: they only die
    assert 1.05 < with_il2 / resting < 1.4
    assert with_il2 < 0.1 * _fold(_culture(agents=IL2_100))


def test_nk_cells_need_il2_or_il15() -> None:
    without = _culture("NK", full_support=False)
    il2_15 = {"IL-2": 150_000.0, "IL-15": 3000.0}
    supplied = _culture(
        "NK", full_support=False, agents=il2_15, to_supply=True, perfusion_ml_per_h=20, feed=False
    )
    assert _fold(without) < 0.2  # cytokine withdrawal
    assert _fold(supplied) > 10.0
    assert _fold(_culture("NK")) > 10.0  # an activation cocktail without agents: full support


def test_perfusion_washes_cytokines_out_unless_the_medium_supply_carries_them() -> None:
    il2_15 = {"IL-2": 150_000.0, "IL-15": 3000.0}
    washed = _culture("NK", full_support=False, agents=il2_15, perfusion_ml_per_h=20, feed=False)
    kept = _culture(
        "NK", full_support=False, agents=il2_15, to_supply=True, perfusion_ml_per_h=20, feed=False
    )
    assert washed.cytokines.concentration["IL-2"] < 0.01
    assert kept.cytokines.concentration["IL-2"] > 100.0
    assert _fold(kept) > 20 * _fold(washed)


def test_cytokines_decay_dilute_and_sum_to_at_most_full_effect() -> None:
    cyt = Cytokines()
    cyt.add({"IL-2": 1000.0}, 1.0, 10.0)
    assert cyt.concentration["IL-2"] == pytest.approx(100.0)
    cyt.decay(48.0)
    assert cyt.concentration["IL-2"] == pytest.approx(50.0)
    cyt.dilute(10.0, 20.0)
    assert cyt.concentration["IL-2"] == pytest.approx(25.0)
    assert cyt.effect("T") == pytest.approx(25.0 / 30.0)
    assert cyt.effect("T", sensitivity=5.0) == pytest.approx(0.5)  # a less sensitive patient
    cyt.add({"IL-15": 100.0}, 1.0, 1.0)
    assert cyt.effect("T") == 1.0 and cyt.effect("NK") == 1.0


class P(Params):
    coi: str = Field("W123426A1B2C3", pattern=r"^[A-Z0-9]{13}$")


il2_only = Protocol(
    "il2-only",
    version="0.1.0",
    params=P,
    inputs=[MaterialInput(name="cells", identity_param="coi", material="nk_cells")],
)


@il2_only.step(unit_procedure="Culture", resume="rerun", max_duration_h=200)
async def culture(run: Run[P], bioreactor: Bioreactor, counter: CellCounter) -> None:
    """NK cells with IL-2 + IL-15 as a cytokine reagent (agents), counted after 7 days."""
    await bioreactor.set_setpoints(Setpoints(temperature_c=37.0))
    await bioreactor.seed("cells", 20.0, 300.0)
    for _ in range(7):
        await bioreactor.add_reagent(
            Reagent(
                name="IL-2 + IL-15",
                kind="cytokine",
                target_cells="NK",
                volume_ml=1.0,
                agents={"IL-2": 3.0e5 if run.params.coi.endswith("C3") else 0.0, "IL-15": 0.0},
            )
        )
        await run.sleep(hours=24)
    count = await counter.count(await bioreactor.draw_sample(0.5))
    run.set_value("viable cells per mL", count.viable_cells_per_ml, unit="cells/mL")


def test_a_cytokine_reagent_acts_through_its_agents_in_the_bag() -> None:
    with_il2 = simulate(il2_only, seed=1, patient="typical")
    without = simulate(il2_only, seed=1, patient="typical", params={"coi": "W123426A1B2C4"})
    assert with_il2.exit_status == without.exit_status == "complete"
    ratio = with_il2.values["viable cells per mL"] / without.values["viable cells per mL"]
    assert ratio > 5.0


def test_contamination_follows_the_cells_into_the_harvest_and_the_next_culture() -> None:
    culture = _culture(days=3)
    culture.contaminated_from_h, culture.contamination_death_rate_per_h = 24.0, 0.15
    culture.advance_to(4 * 24.0)
    cells = culture.cells
    assert cells.contaminated and cells.contamination_death_rate_per_h == 0.15
    harvest = cells.take(cells.volume_ml, "harvest")
    assert harvest.contamination_death_rate_per_h == 0.15
    reseeded = Culture(harvest.take(100.0, "seed"), 96.0)
    viability = reseeded.cells.viability_pct
    reseeded.activate(96.0, "T")
    reseeded.advance_to(96.0 + 72.0)
    assert reseeded.cells.viability_pct < viability / 2  # it keeps dying of it


@pytest.mark.anyio
async def test_a_contaminated_harvest_contaminates_the_next_vessel() -> None:
    from cellauto.clock import Clock
    from cellauto.sim.bioreactor import SimBioreactor
    from cellauto.sim.faults import Contamination
    from cellauto.sim.grex import SimGRex
    from cellauto.sim.simulate import DEFAULT_SIM_START
    from cellauto.sim.starting_material import material_container
    from cellauto.sim.world import SimWorld

    world = SimWorld(Clock(DEFAULT_SIM_START), seed=1)
    world.add_container(material_container("cells", "t_cells"))
    bag, grex = SimBioreactor(world), SimGRex(world, "GR-0001")
    await bag.set_setpoints(Setpoints(temperature_c=37.0))
    await grex.set_setpoints(Setpoints(temperature_c=37.0))
    await bag.seed("cells", 20.0, 300.0)
    bag.inject(Contamination(at_h=0.3))
    await bag.harvest("harvest")  # 30 min later: the contamination is in the cells
    assert world.containers["harvest"].contamination_death_rate_per_h > 0
    await grex.seed("harvest", 100.0, 300.0)
    assert grex.culture is not None
    before = grex.culture.cells.viability_pct
    grex.culture.advance_to(world.now_h() + 48.0)  # no fault armed on the G-Rex
    assert grex.culture.cells.viability_pct < before / 3


def _nk_culture(t_growth: float) -> Container:
    """2e8 NK-product cells (92 % NK, 2 % T, 6 % others) in IL-2/IL-15 for 10 days."""
    cells = Container(
        "bag",
        viable_cells=2e8,
        dead_cells=1e7,
        volume_ml=300.0,
        t_cell_fraction=0.02,
        nk_fraction=0.92,
    )
    culture = Culture(cells, 0.0, CultureModel(nk_culture_t_growth_factor=t_growth))
    culture.activate(0.0, "NK")
    for day in range(1, 11):
        culture.advance_to(24.0 * day)
        if cells.volume_ml < 900:
            culture.add_medium(200.0, 24.0 * day)
    return cells


def test_residual_t_cells_of_an_nk_culture_grow_slowly_and_others_die() -> None:
    grown = _nk_culture(0.7)
    # T cells grow in IL-2/IL-15, slower than NK: their share falls but stays (0.1-2 %)
    assert 0.001 < grown.t_cell_fraction < 0.02
    assert grown.nk_fraction + grown.t_cell_fraction < 1.0  # non-lymphocytes remain a little
    without = _nk_culture(0.0)  # before calibration: T cells only died
    assert without.t_cell_fraction < 0.2 * grown.t_cell_fraction
