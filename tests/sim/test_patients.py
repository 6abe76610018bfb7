"""Patients differ: distributions of starting material and kinetics (issue 14, §3.1-§3.2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cellauto.clock import Clock
from cellauto.sim.bioreactor import SimBioreactor
from cellauto.sim.kinetics import CultureModel, model_for_patient, monocyte_factor
from cellauto.sim.line import SimLine
from cellauto.sim.patients import POPULATIONS, TYPICAL, PatientProfile, draw_patient
from cellauto.sim.simulate import DEFAULT_SIM_START, simulate
from cellauto.sim.starting_material import MATERIAL_PRESETS, material_container
from cellauto.sim.thaw import SimThawer

CAR_T = Path(__file__).resolve().parents[2] / "protocols" / "car_t_autologous.py"


def _draws(name: str, n: int = 10_000) -> list[PatientProfile]:
    rng = np.random.default_rng(20261205)
    return [draw_patient(POPULATIONS[name], rng) for _ in range(n)]


def _quantiles(values: list[float]) -> tuple[float, float, float]:
    p5, p50, p95 = np.percentile(values, [5, 50, 95])
    return float(p5), float(p50), float(p95)


def test_the_same_stream_gives_the_same_patient() -> None:
    population = POPULATIONS["autologous_lymphoma"]
    a = draw_patient(population, np.random.default_rng(3))
    assert a == draw_patient(population, np.random.default_rng(3))
    assert a != draw_patient(population, np.random.default_rng(4))


def test_car_t_patients_follow_the_published_distributions() -> None:
    drawn = _draws("autologous_lymphoma")
    material = [p.starting_material for p in drawn]
    nucleated = [m.viable_cells * 100 / m.viability_pct for m in material]
    p5, p50, p95 = _quantiles(nucleated)  # 1.0e10 / 3.7e9-2.7e10
    assert p50 == pytest.approx(1.0e10, rel=0.1)
    assert p5 == pytest.approx(3.7e9, rel=0.1) and p95 == pytest.approx(2.7e10, rel=0.1)
    p5, p50, p95 = _quantiles([m.viability_pct for m in material])  # 97 / 92-99
    assert p50 == pytest.approx(97.0, abs=0.5) and 90 < p5 < 94 and 98.5 < p95 < 99.5
    standard = [p for p in drawn if p.prior_therapy == "standard"]
    assert len(standard) / len(drawn) == pytest.approx(0.75, abs=0.02)
    cd3 = [p.starting_material.t_cell_fraction for p in standard]
    assert float(np.mean(cd3)) == pytest.approx(0.40, rel=0.05)
    heavy = [p.starting_material.t_cell_fraction for p in drawn if p.prior_therapy == "heavy"]
    assert float(np.mean(heavy)) == pytest.approx(0.28, rel=0.07)  # x0.7
    assert float(np.mean([m.cd4_fraction for m in material])) == pytest.approx(0.55, rel=0.05)
    for m in material:
        assert m.t_cell_fraction + m.nk_fraction + m.monocyte_fraction <= 1.0
    td = _quantiles([p.kinetics.doubling_time_h for p in standard])  # 16-23.7-36 h
    assert td[1] == pytest.approx(23.7, rel=0.05)
    assert td[0] == pytest.approx(16.0, rel=0.1) and td[2] == pytest.approx(36.0, rel=0.1)
    td_heavy = np.median([p.kinetics.doubling_time_h for p in drawn if p.prior_therapy == "heavy"])
    assert float(td_heavy) == pytest.approx(29.6, rel=0.07)
    death = _quantiles([p.kinetics.death_rate_per_h for p in drawn])  # calibrated
    assert death[1] == pytest.approx(0.001, rel=0.05)
    assert death[2] == pytest.approx(0.001 * 2.28, rel=0.1)  # lognormal sigma 0.5
    lag = [p.kinetics.lag_h for p in drawn]
    assert float(np.median(lag)) == pytest.approx(28.0, rel=0.05)
    assert min(lag) >= 16.0 and max(lag) <= 60.0
    cryo = _quantiles([p.cryo_sensitivity for p in drawn])
    assert cryo[1] == pytest.approx(1.0, abs=0.01) and cryo[2] == pytest.approx(1.068, abs=0.01)
    il2 = _quantiles([p.kinetics.il2_sensitivity for p in drawn])
    assert il2[1] == pytest.approx(1.0, rel=0.05) and il2[2] == pytest.approx(2.28, rel=0.1)


def test_nk_donors_and_tumour_digests_spread_too() -> None:
    donors = _draws("allogeneic_nk_donor", 4000)
    nk = [d.starting_material.nk_fraction for d in donors]
    assert float(np.mean(nk)) == pytest.approx(0.92, abs=0.01)
    cd16 = [d.starting_material.nk_cd16_fraction for d in donors]
    assert float(np.mean(cd16)) == pytest.approx(0.85, abs=0.01)
    viable = _quantiles([d.starting_material.viable_cells for d in donors])
    assert viable[1] == pytest.approx(2.0e8, rel=0.1)
    digests = _draws("tumour_digest", 4000)
    til = [d.starting_material.t_cell_fraction for d in digests]
    assert float(np.mean(til)) == pytest.approx(0.15, rel=0.07)
    viability = [d.starting_material.viability_pct for d in digests]
    assert min(viability) >= 40 and max(viability) <= 80
    assert all(d.kinetics.lag_h >= 72 for d in digests)
    assert material_container("d", "tumour_digest").t_cell_fraction == 0.15


def test_the_typical_patient_lies_inside_every_drawn_range() -> None:
    drawn = _draws("autologous_lymphoma", 4000)
    typical = TYPICAL.starting_material
    for field in ("viable_cells", "viability_pct", "t_cell_fraction", "cd4_fraction"):
        p5, _, p95 = _quantiles([getattr(p.starting_material, field) for p in drawn])
        assert p5 <= getattr(typical, field) <= p95, field
    assert MATERIAL_PRESETS["apheresis"]["viable_cells"] == typical.viable_cells  # one place
    # the typical patient's T cells: calibrated division and death (issue 14)
    assert model_for_patient(TYPICAL) == CultureModel(doubling_time_h=23.7, death_rate_per_h=0.001)
    assert model_for_patient(POPULATIONS["healthy_donor_pbmc"].typical) == CultureModel()


@pytest.mark.anyio
async def test_the_patient_s_kinetics_reach_the_bag_and_its_cryo_sensitivity_the_thawer() -> None:
    slow = TYPICAL.model_copy(
        update={
            "kinetics": TYPICAL.kinetics.model_copy(
                update={"doubling_time_h": 40.0, "max_viable_cells_per_ml": 8e6}
            ),
            "cryo_sensitivity": 0.9,
        }
    )
    line = SimLine(clock=Clock(DEFAULT_SIM_START), seed=1, patient=slow)
    assert line.world.patient is slow
    model = model_for_patient(slow)
    assert model.doubling_time_h == 40.0 and model.max_viable_cells_per_ml == 8e6
    assert SimBioreactor(line.world).model == model
    assert SimThawer(line.world).cryo_sensitivity == 0.9
    assert SimThawer(line.world, cryo_sensitivity=1.02).cryo_sensitivity == 1.02


def test_monocytes_slow_expansion_above_forty_percent() -> None:
    model = CultureModel()
    assert monocyte_factor(0.3, model) == 1.0
    assert monocyte_factor(1.0, model) == pytest.approx(0.4)
    assert monocyte_factor(0.7, model) == pytest.approx(0.7)


def test_a_drawn_car_t_patient_changes_the_batch_and_typical_does_not() -> None:
    typical = simulate(CAR_T, seed=5, patient="typical")
    drawn = simulate(CAR_T, seed=5, patient="drawn")
    assert typical.patient == TYPICAL
    assert drawn.patient is not None and drawn.patient != TYPICAL
    key = "fold expansion"
    assert key in typical.values and key in drawn.values
    assert drawn.values[key] != pytest.approx(typical.values[key], rel=1e-6)


def test_transduction_factor_spread_keeps_car_plus_below_85_percent() -> None:
    factors = _quantiles([p.kinetics.transduction_factor for p in _draws("autologous_lymphoma")])
    # lognormal(0, 0.25) (x0.85 if heavy): 37 % typical CAR+ stays below 85 % at p99.9
    assert factors[2] == pytest.approx(1.45, rel=0.07)
    assert max(p.kinetics.transduction_factor for p in _draws("autologous_lymphoma")) < 2.4


def test_nk_donors_grow_slower_than_t_cells_and_die_less_spread() -> None:
    donors = _draws("allogeneic_nk_donor", 4000)
    td = _quantiles([d.kinetics.doubling_time_h for d in donors])
    assert td[1] == pytest.approx(30.0, rel=0.05)
    assert float(np.median([d.kinetics.lag_h for d in donors])) == pytest.approx(36.0, rel=0.05)
    death = _quantiles([d.kinetics.death_rate_per_h for d in donors])
    assert death[2] == pytest.approx(0.0008 * 2.1, rel=0.1)  # lognormal sigma 0.45
