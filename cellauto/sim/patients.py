"""Patients differ: the starting material and culture kinetics of one simulated batch.

A :class:`PatientProfile` says what arrives at the line (cell count, viability, the
T-cell, CD4, NK and monocyte shares) and how those cells behave in culture (lag,
doubling time, maximum density, death rate, transduction, sensitivity to IL-2) and at
thaw (cryo-sensitivity). A simulated run draws one per seed from its protocol's
:class:`Population` (:func:`draw_patient`, on the world's named stream ``"patient"``),
or takes the population's ``typical`` patient, or a profile made by hand.

Each population's typical patient is the fixed starting material every seed had
before patients existed (:data:`~cellauto.sim.starting_material.MATERIAL_PRESETS`
derives from it) with :class:`~cellauto.sim.kinetics.CultureModel`'s kinetics, so
mechanics tests that pin ``patient="typical"`` see the behaviour they always saw; it
lies inside the 5-95 % range of every drawn quantity.

Distributions (sources: ``docs/simulation-sources.md``, "Patients and culture"; the
implementation design of issue 14, §3.1-§3.2):

* ``autologous_lymphoma`` (CAR-T leukapheresis): total nucleated cells
  lognormal(ln 1e10, 0.6) in [1.5e9, 6e10] (Allen 2017 *Transfusion*; Ceppi 2018
  *Transfusion*); viability 100 - lognormal(ln 3, 0.6) in [75, 99.5] (Panch 2019 *Mol
  Ther*); CD3+ beta(0.40, 0.17) (Allen 2017; Stroncek 2016 *Cytotherapy*); CD4 of T
  beta(0.55, 0.15) (Turtle 2016 *J Clin Invest*); NK beta(0.08, 0.04) (assumed);
  monocytes beta(0.25, 0.12) (Stroncek 2016); prior therapy ``heavy`` with p 0.25
  (Iacoboni 2021 *Blood Adv*): CD3+ x0.7, doubling time x1.25, transduction x0.85
  (Das 2019 *Cancer Discov*; Fraietta 2018 *Nat Med*).
* ``allogeneic_nk_donor``: viable 2e8 x lognormal(0, 0.35), viability N(94, 2), NK
  beta(0.92, 0.04), residual T beta(0.02, 0.012) (Koepsell 2013 *Transfusion*), CD16+
  of NK beta(0.85, 0.07), CD8a+ of NK beta(0.35, 0.10) (Addison 2005 *Immunology*).
* ``tumour_digest`` (TIL): viable lognormal(ln 5e7, 0.8), viability uniform(40, 80),
  CD3+ beta(0.15, 0.10), the rest tumour and stroma that die in culture; 5-day lag
  (Dudley 2003 *J Immunother*; Sarnaik 2021 *J Clin Oncol*).
* Kinetics per patient: lag normal(28, 8) h in [16, 60] (NK: 36, 10); doubling time
  lognormal(ln 23.7 h, 0.25) (NK: 30 h) (PROCESS.md 21 h-2.4 d; Levine 2017 *Mol Ther
  Methods Clin Dev*); capacity x lognormal(0, 0.15); base death rate 0.1 %/h (NK 0.08)
  x lognormal(0, 0.5) (NK 0.45; calibrated against the fidelity table, issue 14);
  transduction x lognormal(0, 0.25) (calibrated); IL-2 EC50 x lognormal(0, 0.5); cryo-sensitivity
  lognormal(0, 0.04) (assumed; calibrated against design §1.11).
* ``healthy_donor_pbmc`` and ``healthy_donor_t_cells`` (the demo's materials) are
  not spread: a drawn donor is the typical one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
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
MODEL_VERSION = "1"

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
    nk_cd16_fraction: float = Field(0.85, ge=0, le=1, description="CD16+ share of NK cells")
    nk_cd8_fraction: float = Field(0.35, ge=0, le=1, description="CD8a+ share of NK cells")
    nk_cd56_negative_fraction: float = Field(
        0.0, ge=0, le=1, description="CD56- CD16+ share of NK cells (outside a CD56+CD3- gate)"
    )

    @property
    def cd8_fraction(self) -> float:
        """CD8+ share of T cells: the T cells that are not CD4+ (no double negatives)."""
        return 1.0 - self.cd4_fraction


class CultureKinetics(BaseModel):
    """How the patient's cells grow (defaults: :class:`~cellauto.sim.kinetics.CultureModel`)."""

    model_config = _FROZEN

    lag_h: float = Field(28.0, ge=0, description="from stimulus to growth")
    doubling_time_h: float = Field(24.0, gt=0, description="at full support")
    max_viable_cells_per_ml: float = Field(1.0e7, gt=0, description="in a rocking bag")
    il2_sensitivity: float = Field(
        1.0, gt=0, description="multiplier of IL-2's EC50 (above 1: less sensitive)"
    )
    death_rate_per_h: float = Field(0.0008, ge=0, description="base death of expanding cells")
    other_cells_death_rate_per_h: float = Field(
        0.008, ge=0, description="cells that do not expand (tumour cells: faster)"
    )
    transduction_factor: float = Field(1.0, gt=0, description="multiplier of vector efficiency")


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
    typical: PatientProfile = Field(description="the reference patient (today's preset)")


# -- distributions -----------------------------------------------------------------------
#: Spread of the patient's transduction factor (lognormal sigma). With the vector's own
#: lot-to-lot spread (sigma 0.15, ``sim/bioreactor.py``) CAR+ at release is 37 % typical,
#: p5-p95 about 23-60 % and never above 85 % (PROCESS.md 20-80 %; calibrated against the
#: fidelity table, issue 14: sigma 0.45 put 2 of 100 seeds at the 95 % clip).
TRANSDUCTION_SIGMA = 0.25
#: Spread of a healthy NK donor's base death rate (lognormal sigma; the patients' is
#: 0.9): healthy donors' CD56-selected NK cells keep viability above about 85 % in
#: IL-2/IL-15 after the first days (Granzin 2017 *Front Immunol*; *assumed* figure).
NK_DEATH_SIGMA = 0.45


def _beta(rng: np.random.Generator, mean: float, sd: float) -> float:
    """A share with this mean and standard deviation (beta distribution)."""
    k = mean * (1.0 - mean) / sd**2 - 1.0
    return float(rng.beta(mean * k, (1.0 - mean) * k))


def _lognormal(rng: np.random.Generator, median: float, sigma: float) -> float:
    return float(median * math.exp(sigma * rng.standard_normal()))


def _clip(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def _kinetics(
    rng: np.random.Generator,
    typical: CultureKinetics,
    *,
    lag_sd_h: float = 8.0,
    lag_range_h: tuple[float, float] = (16.0, 60.0),
    doubling_factor: float = 1.0,
    transduction_factor: float = 1.0,
    death_sigma: float = 0.9,
) -> tuple[CultureKinetics, float]:
    """Per-patient kinetics around ``typical`` (§3.2), and the cryo-sensitivity."""
    lag = _clip(typical.lag_h + lag_sd_h * float(rng.standard_normal()), *lag_range_h)
    kinetics = typical.model_copy(
        update={
            "lag_h": lag,
            "doubling_time_h": _lognormal(rng, typical.doubling_time_h, 0.25) * doubling_factor,
            "max_viable_cells_per_ml": _lognormal(rng, typical.max_viable_cells_per_ml, 0.15),
            "death_rate_per_h": _lognormal(rng, typical.death_rate_per_h, death_sigma),
            "transduction_factor": _lognormal(rng, 1.0, TRANSDUCTION_SIGMA) * transduction_factor,
            "il2_sensitivity": _lognormal(rng, 1.0, 0.5),
        }
    )
    return kinetics, _lognormal(rng, 1.0, 0.04)


def _draw_apheresis(population: Population, rng: np.random.Generator) -> PatientProfile:
    heavy = bool(rng.random() < 0.25)
    nucleated = _clip(_lognormal(rng, 1.0e10, 0.6), 1.5e9, 6.0e10)
    viability = _clip(100.0 - _lognormal(rng, 3.0, 0.6), 75.0, 99.5)
    t_share = _beta(rng, 0.40, 0.17) * (0.7 if heavy else 1.0)
    cd4 = _beta(rng, 0.55, 0.15)
    nk = min(_beta(rng, 0.08, 0.04), 0.98 - t_share)  # the shares add to at most 1
    monocytes = min(_beta(rng, 0.25, 0.12), max(0.0, 0.98 - t_share - nk))
    material = StartingMaterial(
        material=population.material,
        viable_cells=nucleated * viability / 100.0,
        viability_pct=viability,
        volume_ml=float(rng.uniform(120.0, 300.0)),
        t_cell_fraction=t_share,
        cd4_fraction=cd4,
        nk_fraction=nk,
        monocyte_fraction=monocytes,
    )
    kinetics, cryo = _kinetics(
        rng,
        population.typical.kinetics,
        doubling_factor=1.25 if heavy else 1.0,
        transduction_factor=0.85 if heavy else 1.0,
        death_sigma=T_DEATH_SIGMA,
    )
    return PatientProfile(
        population=population.name,
        starting_material=material,
        kinetics=kinetics,
        cryo_sensitivity=cryo,
        prior_therapy="heavy" if heavy else "standard",
    )


def _draw_nk_donor(population: Population, rng: np.random.Generator) -> PatientProfile:
    typical = population.typical.starting_material
    nk = _beta(rng, 0.92, 0.04)
    material = typical.model_copy(
        update={
            "viable_cells": _lognormal(rng, typical.viable_cells, 0.35),
            "viability_pct": _clip(94.0 + 2.0 * float(rng.standard_normal()), 85.0, 99.0),
            "nk_fraction": nk,
            "t_cell_fraction": min(_beta(rng, 0.02, 0.012), 1.0 - nk),
            "nk_cd16_fraction": _beta(rng, 0.85, 0.07),
            "nk_cd8_fraction": _beta(rng, 0.35, 0.10),
            "nk_cd56_negative_fraction": _beta(rng, NK_CD56_NEGATIVE, 0.02),
        }
    )
    kinetics, cryo = _kinetics(
        rng, population.typical.kinetics, lag_sd_h=10.0, death_sigma=NK_DEATH_SIGMA
    )
    return PatientProfile(
        population=population.name,
        starting_material=material,
        kinetics=kinetics.model_copy(update={"transduction_factor": 1.0}),
        cryo_sensitivity=float(cryo**1.25),  # lognormal(0, 0.05)
    )


def _draw_tumour_digest(population: Population, rng: np.random.Generator) -> PatientProfile:
    typical = population.typical.starting_material
    t_share = _beta(rng, 0.15, 0.10)
    material = typical.model_copy(
        update={
            "viable_cells": _lognormal(rng, typical.viable_cells, 0.8),
            "viability_pct": float(rng.uniform(40.0, 80.0)),
            "t_cell_fraction": t_share,
            "cd4_fraction": _beta(rng, 0.40, 0.15),
            "nk_fraction": min(_beta(rng, 0.03, 0.02), 1.0 - t_share),
        }
    )
    kinetics, cryo = _kinetics(
        rng, population.typical.kinetics, lag_sd_h=24.0, lag_range_h=(72.0, 192.0)
    )
    return PatientProfile(
        population=population.name,
        starting_material=material,
        kinetics=kinetics,
        cryo_sensitivity=cryo,
    )


def _population(
    name: str,
    description: str,
    material: dict[str, Any],
    kinetics: CultureKinetics | None = None,
) -> Population:
    typical = PatientProfile(
        population=name,
        starting_material=StartingMaterial(**material),
        kinetics=kinetics or CultureKinetics(),
    )
    return Population(
        name=name, description=description, material=material["material"], typical=typical
    )


#: A patient's T cells after CD3/CD28 activation: they divide every 23.7 h at full
#: support and die at 0.1 %/h (apoptosis of activated T cells in IL-2 culture): a net
#: population doubling of about a day (PROCESS.md 21 h-2.4 d) and 90-97 % viable cells at
#: harvest (calibrated against the fidelity table, issue 14; the split between division
#: and death *assumed*; before calibration 24 h and 0.08 %/h left 95-100 %).
T_KINETICS = CultureKinetics(doubling_time_h=23.7, death_rate_per_h=0.001)
#: Spread of a patient's T-cell death rate (lognormal sigma; 0.9 before calibration put
#: harvest viability from 69 to 100 %: *assumed*, calibrated to 85-99 % at harvest).
T_DEATH_SIGMA = 0.5

#: A healthy donor's NK cells in IL-2/IL-15 (design §3.2): lag 36 h after the
#: cytokines (normal sd 10 h), doubling 30 h at full support (lognormal sigma 0.25):
#: slower than activated T cells (Granzin 2017 *Front Immunol*; PROCESS.md).
NK_KINETICS = CultureKinetics(lag_h=36.0, doubling_time_h=30.0)

#: CD56- CD16+ NK cells, of a healthy donor's NK cells: a minor subset (a few per cent)
#: that CD56 selection does not remove entirely (CD16 and NKp46 co-selected) and that
#: expands with the rest; a CD56+CD3- gate misses it, so an NK product reads 95-98 %
#: CD56+CD3- beside its residual T cells (Bjorkstrom NK et al. 2010 *Blood* (?);
#: Milush JM et al. 2009 *Blood* (?); the share *assumed*, beta mean 4 %, sd 2 %).
NK_CD56_NEGATIVE = 0.04

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
            T_KINETICS,
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
                "nk_cd56_negative_fraction": NK_CD56_NEGATIVE,
            },
            NK_KINETICS,
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
        _population(
            "tumour_digest",
            "solid tumours (melanoma): enzymatic digest for tumour-infiltrating lymphocytes",
            {
                "material": "tumour_digest",
                "viable_cells": 5.0e7,
                "viability_pct": 60.0,
                "volume_ml": 20.0,
                "t_cell_fraction": 0.15,
                "nk_fraction": 0.03,
                "cd4_fraction": 0.40,
            },
            CultureKinetics(lag_h=120.0, doubling_time_h=30.0, other_cells_death_rate_per_h=0.02),
        ),
    )
}

_DRAWS: dict[str, Callable[[Population, np.random.Generator], PatientProfile]] = {
    "autologous_lymphoma": _draw_apheresis,
    "allogeneic_nk_donor": _draw_nk_donor,
    "tumour_digest": _draw_tumour_digest,
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
    stream). A population without distributions (the demo's healthy donors) gives its
    typical patient and draws nothing."""
    draw = _DRAWS.get(population.name)
    return draw(population, rng) if draw is not None else population.typical


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
