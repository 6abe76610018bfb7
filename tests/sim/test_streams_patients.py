"""Named random streams and simulated patients (issue 14, seam S1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from cellauto.clock import Clock
from cellauto.protocols.loader import load_protocol
from cellauto.records import payloads as rec
from cellauto.sim import simulate
from cellauto.sim.line import SimLine, protocol_population
from cellauto.sim.patients import (
    POPULATIONS,
    TYPICAL,
    PatientProfile,
    StartingMaterial,
    draw_patient,
    population_for_material,
    resolve_patient,
)
from cellauto.sim.simulate import DEFAULT_SIM_START
from cellauto.sim.starting_material import MATERIAL_PRESETS, material_container
from cellauto.sim.streams import named_stream
from cellauto.sim.world import SimWorld

DEMO = Path(__file__).resolve().parents[2] / "protocols" / "demo_expansion.py"


def test_a_named_stream_depends_on_the_seed_and_name_only() -> None:
    a = named_stream(7, "patient").random(5)
    assert np.array_equal(a, named_stream(7, "patient").random(5))
    assert not np.array_equal(a, named_stream(8, "patient").random(5))
    assert not np.array_equal(a, named_stream(7, "thaw").random(5))
    with pytest.raises(ValueError, match="needs a name"):
        named_stream(7, "")


@pytest.mark.anyio
async def test_adding_a_stream_or_an_instrument_never_shifts_another_s_draws() -> None:
    plain = SimWorld(Clock(DEFAULT_SIM_START), seed=3)
    first_instrument = plain.spawn_rng().random(4)
    patient = plain.stream("patient").random(4)

    busy = SimWorld(Clock(DEFAULT_SIM_START), seed=3)
    busy.stream("cytokine lots").random(100)  # a model added later, asked for first
    busy_patient = busy.stream("patient").random(4)
    assert np.array_equal(busy.spawn_rng().random(4), first_instrument)
    for _ in range(12):
        busy.spawn_rng()
    assert np.array_equal(busy_patient, patient)
    assert np.array_equal(busy.stream("patient").random(4), patient)


@pytest.mark.anyio
async def test_a_world_without_a_seed_gives_one_stream_per_name() -> None:
    world = SimWorld(Clock(DEFAULT_SIM_START), seed=None)
    assert np.array_equal(world.stream("patient").random(3), world.stream("patient").random(3))


def test_the_typical_patients_are_today_s_presets() -> None:
    assert TYPICAL is POPULATIONS["autologous_lymphoma"].typical
    for population in POPULATIONS.values():
        material = population.typical.starting_material
        preset = MATERIAL_PRESETS[population.material]
        assert material.model_dump(exclude={"material"}) == preset
        assert population_for_material(population.material) is population
    assert population_for_material("cord_blood") is None
    kinetics = TYPICAL.kinetics
    assert (kinetics.lag_h, kinetics.doubling_time_h) == (28.0, 23.7)  # calibrated
    assert kinetics.max_viable_cells_per_ml == 1.0e7
    assert TYPICAL.starting_material.cd8_fraction == pytest.approx(0.38)


def test_a_profile_is_frozen_and_flattens_for_the_record() -> None:
    with pytest.raises(ValidationError):
        TYPICAL.cryo_sensitivity = 2.0  # type: ignore[misc]
    flat = TYPICAL.as_record()
    assert flat["population"] == "autologous_lymphoma"
    assert flat["starting_material.viable_cells"] == 5.0e9
    assert flat["kinetics.doubling_time_h"] == 23.7
    assert PatientProfile.model_validate(TYPICAL.model_dump(mode="json")) == TYPICAL


def test_drawing_and_resolving_a_patient() -> None:
    population = POPULATIONS["allogeneic_nk_donor"]
    rng = np.random.default_rng(0)
    assert draw_patient(population, rng) != population.typical  # drawn: tests/sim/test_patients
    assert resolve_patient("typical", population, None) is population.typical
    assert resolve_patient("drawn", population, rng).population == population.name
    assert resolve_patient(TYPICAL, None, None) is TYPICAL
    assert resolve_patient("drawn", None, rng) is None
    with pytest.raises(ValueError, match="drawn"):
        resolve_patient("median", population, rng)


@pytest.mark.anyio
async def test_a_given_patient_fills_the_starting_material() -> None:
    poor = TYPICAL.model_copy(
        update={
            "starting_material": TYPICAL.starting_material.model_copy(
                update={"viable_cells": 1.5e9, "viability_pct": 80.0}
            )
        }
    )
    line = SimLine(clock=Clock(DEFAULT_SIM_START), seed=1, patient=poor)
    assert line.patient is poor
    info = line.simulation_info()
    assert info.patient_choice == "given" and info.population == "autologous_lymphoma"
    assert info.patient is not None and info.patient["starting_material.viable_cells"] == 1.5e9
    bare = SimLine(clock=Clock(DEFAULT_SIM_START), seed=1)
    assert bare.patient is None and bare.simulation_info().population is None
    assert material_container("x", "apheresis").viable_cells == 5.0e9
    assert StartingMaterial(material="pbmc", **MATERIAL_PRESETS["pbmc"]).monocyte_fraction == 0


def test_a_simulated_run_records_its_patient_and_the_demo_donor_is_not_spread() -> None:
    drawn = simulate(DEMO, seed=4)
    typical = simulate(DEMO, seed=4, patient="typical")
    assert drawn.patient == typical.patient == POPULATIONS["healthy_donor_t_cells"].typical
    started = drawn.of_kind(rec.RunStarted)[0]
    assert started.simulation is not None
    assert started.simulation.population == "healthy_donor_t_cells"
    assert started.simulation.patient_choice == "drawn"
    assert started.simulation.model_versions == {"patients": "1"}
    assert drawn.values == typical.values
    assert drawn.faults == []
    assert protocol_population(load_protocol(DEMO)) is POPULATIONS["healthy_donor_t_cells"]


def test_a_run_started_of_before_patients_validates() -> None:
    started = simulate(DEMO, seed=1, patient="typical").of_kind(rec.RunStarted)[0]
    old = started.model_dump(mode="json")
    del old["simulation"]
    assert rec.RunStarted.model_validate(old).simulation is None
