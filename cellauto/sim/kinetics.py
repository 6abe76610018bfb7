"""Culture kinetics: the parameters of growth, metabolism and death, per patient.

:class:`CultureModel` holds every rate :class:`~cellauto.sim.culture.Culture`
integrates (PROCESS.md; assumed where marked). :func:`model_for_patient` puts one
patient's kinetics (:class:`~cellauto.sim.patients.CultureKinetics`: lag, doubling
time, carrying capacity, death rates; drawn per seed, design §3.2) into a vessel's
model. The typical patient's kinetics are the model's defaults, so a typical run
grows exactly as before patients existed.

Monocytes slow expansion above a 40 % share of the culture's viable cells
(growth x (1 - 0.6·(m - 0.4)/0.6); Stroncek DF et al. 2016 *Cytotherapy*).
Sources: ``docs/simulation-sources.md``, "Patients and culture".
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from cellauto.sim.patients import CultureKinetics, PatientProfile

__all__ = ["CultureModel", "model_for_patient", "monocyte_factor"]


class CultureModel(BaseModel):
    """Kinetic and metabolic parameters (defaults: PROCESS.md, assumed where marked)."""

    lag_h: float = Field(28.0, ge=0, description="after activation (1-2 days)")
    doubling_time_h: float = Field(24.0, gt=0, description="at full glucose, no lactate")
    max_viable_cells_per_ml: float = Field(1.0e7, gt=0, description="rocking bag")
    death_rate_per_h: float = Field(0.0008, ge=0)
    starvation_death_rate_per_h: float = Field(0.01, ge=0, description="k_d when starved")
    starvation_glucose_mmol_per_l: float = Field(0.5, ge=0)
    overgrowth_death_rate_per_h: float = Field(0.02, ge=0, description="at carrying capacity")
    crowding_from_fraction: float = Field(
        0.85, gt=0, lt=1, description="death rises from this share of the carrying capacity"
    )
    other_cells_death_rate_per_h: float = Field(0.008, ge=0, description="non-expanding cells")
    glucose_ks_mmol_per_l: float = Field(0.8, gt=0, description="assumed")
    lactate_ki_mmol_per_l: float = Field(35.0, gt=0, description="assumed")
    yield_cells_per_mmol_glucose: float = Field(3.5e8, gt=0, description="assumed")
    maintenance_mmol_per_cell_h: float = Field(1.0e-11, ge=0, description="assumed")
    lactate_per_glucose: float = Field(1.8, ge=0, le=2.0)
    medium_glucose_mmol_per_l: float = Field(17.5, gt=0, description="assumed medium")
    optimum_temperature_c: float = 37.0
    step_h: float = Field(0.25, gt=0, le=1.0, description="integration step")
    max_viable_cells: float | None = Field(
        None, gt=0, description="total capacity of a vessel whose capacity is per area (G-Rex)"
    )
    monocyte_inhibition_from: float = Field(
        0.4, ge=0, le=1, description="monocyte share above which growth slows (Stroncek 2016)"
    )
    nk_culture_t_growth_factor: float = Field(
        0.7,
        ge=0,
        le=1,
        description="residual T cells of an NK culture grow at this share of the NK rate "
        "(IL-2/IL-15 homeostatic proliferation; Zhang 1998 Immunity; assumed figure)",
    )
    transduction_factor: float = Field(1.0, gt=0, description="the patient's, on efficiency")
    il2_sensitivity: float = Field(1.0, gt=0, description="the patient's IL-2 EC50 multiplier")


def monocyte_factor(monocyte_share: float, model: CultureModel) -> float:
    """Growth multiplier for a culture whose viable cells are ``monocyte_share`` monocytes."""
    start = model.monocyte_inhibition_from
    if monocyte_share <= start:
        return 1.0
    return max(0.0, 1.0 - 0.6 * (monocyte_share - start) / (1.0 - start))


def model_for_patient(
    patient: PatientProfile | CultureKinetics | None, base: CultureModel | None = None
) -> CultureModel:
    """``base`` (default :class:`CultureModel`) with the patient's kinetics in it.

    The carrying capacity is the patient's factor on the vessel's: the rocking bag's
    1e7 viable/mL is the typical patient's (a G-Rex scales it by its own).
    """
    base = base or CultureModel()
    if patient is None:
        return base
    kinetics = patient.kinetics if isinstance(patient, PatientProfile) else patient
    typical = CultureKinetics()
    capacity = kinetics.max_viable_cells_per_ml / typical.max_viable_cells_per_ml
    return base.model_copy(
        update={
            "lag_h": kinetics.lag_h,
            "doubling_time_h": kinetics.doubling_time_h,
            "max_viable_cells_per_ml": base.max_viable_cells_per_ml * capacity,
            "max_viable_cells": (
                base.max_viable_cells * capacity if base.max_viable_cells is not None else None
            ),
            "death_rate_per_h": kinetics.death_rate_per_h,
            "other_cells_death_rate_per_h": kinetics.other_cells_death_rate_per_h,
            "transduction_factor": kinetics.transduction_factor,
            "il2_sensitivity": kinetics.il2_sensitivity,
        }
    )
