"""Patients differ: the starting material and culture kinetics of one simulated batch.

A :class:`PatientProfile` says what arrives at the line (cell count, viability, the
T-cell, CD4, NK and monocyte shares) and how those cells behave in culture (lag,
doubling time, maximum density, sensitivity to IL-2) and at thaw (cryo-sensitivity).
A simulated run draws one per seed from its protocol's :class:`Population`
(:func:`draw_patient`, on the world's named stream ``"patient"``), or takes the
population's ``typical`` (median) patient, or a profile made by hand.

The populations' distributions are not modelled yet: :func:`draw_patient` returns
the population's typical patient, which is exactly the fixed starting material
(:data:`~cellauto.sim.starting_material.MATERIAL_PRESETS`) and culture kinetics
(:class:`~cellauto.sim.culture.CultureModel`) every seed had before patients existed.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "MODEL_VERSION",
    "POPULATIONS",
    "TYPICAL",
    "CultureKinetics",
    "PatientChoice",
    "PatientProfile",
    "Population",
    "StartingMaterial",
    "draw_patient",
    "population_for_material",
    "resolve_patient",
]

#: Version of the patient models, recorded with every simulated run's patient.
MODEL_VERSION = "0-typical"

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class StartingMaterial(BaseModel):
    """What arrives at the line: one container of a kind of starting material."""

    model_config = _FROZEN

    material: str = Field(description='the kind of material it fills: "apheresis", ...')
    viable_cells: float = Field(gt=0)
    viability_pct: float = Field(gt=0, le=100)
    volume_ml: float = Field(gt=0)
    t_cell_fraction: float = Field(ge=0, le=1, description="CD3+ share of viable cells")
    cd4_fraction: float = Field(ge=0, le=1, description="CD4+ share of T cells")
    nk_fraction: float = Field(ge=0, le=1, description="CD3- CD56+ share of viable cells")
    monocyte_fraction: float = Field(0.0, ge=0, le=1, description="share of viable cells")

    @property
    def cd8_fraction(self) -> float:
        """CD8+ share of T cells: the T cells that are not CD4+ (no double negatives)."""
        return 1.0 - self.cd4_fraction


class CultureKinetics(BaseModel):
    """How the patient's cells grow (defaults: today's :class:`CultureModel`)."""

    model_config = _FROZEN

    lag_h: float = Field(28.0, ge=0, description="from stimulus to growth")
    doubling_time_h: float = Field(24.0, gt=0, description="at full support")
    max_viable_cells_per_ml: float = Field(1.0e7, gt=0, description="in a rocking bag")
    il2_sensitivity: float = Field(
        1.0, gt=0, description="multiplier of IL-2's EC50 (above 1: less sensitive)"
    )


class PatientProfile(BaseModel):
    """One patient (or donor) of a population: material, kinetics, cryo-sensitivity."""

    model_config = _FROZEN

    population: str
    starting_material: StartingMaterial
    kinetics: CultureKinetics = CultureKinetics()
    cryo_sensitivity: float = Field(
        1.0, gt=0, description="multiplier of post-thaw viability (1: a typical patient)"
    )
    prior_therapy: Literal["standard", "heavy"] = "standard"

    def as_record(self) -> dict[str, float | str]:
        """The profile as flat ``name: value`` pairs (``RunStarted.simulation.patient``)."""
        flat: dict[str, float | str] = {}

        def put(prefix: str, data: dict[str, Any]) -> None:
            for key, value in data.items():
                if isinstance(value, dict):
                    put(f"{prefix}{key}.", value)
                else:
                    flat[f"{prefix}{key}"] = value

        put("", self.model_dump(mode="json"))
        return flat


class Population(BaseModel):
    """Where patients come from: a kind of starting material and its distributions."""

    model_config = _FROZEN

    name: str
    description: str
    material: str = Field(description="the starting material its patients give")
    typical: PatientProfile = Field(description="every quantity at its median")


def _population(name: str, description: str, material: dict[str, Any]) -> Population:
    typical = PatientProfile(population=name, starting_material=StartingMaterial(**material))
    return Population(
        name=name, description=description, material=material["material"], typical=typical
    )


#: The populations, by name; each gives one kind of starting material.
POPULATIONS: dict[str, Population] = {
    p.name: p
    for p in (
        _population(
            "autologous_lymphoma",
            "adults with relapsed or refractory B-cell lymphoma: fresh leukapheresis",
            {
                "material": "apheresis",
                "viable_cells": 5.0e9,
                "viability_pct": 97.0,
                "volume_ml": 250.0,
                "t_cell_fraction": 0.55,
                "nk_fraction": 0.10,
                "cd4_fraction": 0.62,
            },
        ),
        _population(
            "allogeneic_nk_donor",
            "healthy donors: CD3-depleted, CD56-selected NK cells",
            {
                "material": "nk_cells",
                "viable_cells": 2.0e8,
                "viability_pct": 94.0,
                "volume_ml": 50.0,
                "t_cell_fraction": 0.02,
                "nk_fraction": 0.92,
                "cd4_fraction": 0.6,
            },
        ),
        _population(
            "healthy_donor_pbmc",
            "healthy donors: peripheral blood mononuclear cells",
            {
                "material": "pbmc",
                "viable_cells": 1.0e9,
                "viability_pct": 95.0,
                "volume_ml": 100.0,
                "t_cell_fraction": 0.60,
                "nk_fraction": 0.10,
                "cd4_fraction": 0.60,
            },
        ),
        _population(
            "healthy_donor_t_cells",
            "healthy donors: enriched T cells",
            {
                "material": "t_cells",
                "viable_cells": 1.0e9,
                "viability_pct": 95.0,
                "volume_ml": 100.0,
                "t_cell_fraction": 0.60,
                "nk_fraction": 0.10,
                "cd4_fraction": 0.60,
            },
        ),
    )
}

#: The typical CAR-T patient: today's fixed apheresis material and culture kinetics.
TYPICAL: PatientProfile = POPULATIONS["autologous_lymphoma"].typical

#: What a simulated run's patient is: drawn from the population, its typical patient,
#: or a given profile.
PatientChoice = Literal["drawn", "typical"] | PatientProfile


def population_for_material(material: str) -> Population | None:
    """The population whose patients give ``material``; None if none does."""
    return next((p for p in POPULATIONS.values() if p.material == material), None)


def draw_patient(population: Population, rng: np.random.Generator) -> PatientProfile:
    """One patient of ``population``, drawn with ``rng`` (the world's ``"patient"``
    stream). Not modelled yet: every patient is the population's typical one, and
    ``rng`` is not drawn from."""
    del rng
    return population.typical


def resolve_patient(
    choice: PatientChoice | str,
    population: Population | None,
    rng: np.random.Generator | None,
) -> PatientProfile | None:
    """The patient a simulated run has: ``"drawn"`` from ``population`` with ``rng``,
    its ``"typical"`` patient, or the given profile. None: no population (a line for
    no starting material) and no profile."""
    if isinstance(choice, PatientProfile):
        return choice
    if choice not in ("drawn", "typical"):
        raise ValueError(f'patient must be "drawn", "typical" or a PatientProfile, not {choice!r}')
    if population is None:
        return None
    if choice == "typical":
        return population.typical
    assert rng is not None, "a drawn patient needs the world's patient stream"
    return draw_patient(population, rng)
