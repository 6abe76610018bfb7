"""Medium chemistry: bicarbonate pH that falls as lactate accumulates, CO2 control.

Open system (design §3.5): the gas sets pCO2 = CO2 % x (760 - 47) mmHg / 100, and
bicarbonate follows Henderson-Hasselbalch, [HCO3-] = 0.0307 * pCO2 * 10^(pH - 6.1).
Lactic acid (pKa 3.9, fully dissociated) is an acid load A (mM) titrated by
bicarbonate and the non-bicarbonate buffers (beta_nb mM per pH unit):

    (HCO3_0 - [HCO3-](pH)) + beta_nb * (pH_0 - pH) = A

pH_0 is fresh medium's pH at the reference CO2 (7.44 for 24 mM bicarbonate at 5 %).
The pH solves by fixed-iteration bisection (deterministic). A vessel with pH control
(a rocking bag with a probe) lowers CO2, not below 2 %, to hold its set point; a
static vessel in a 5 % CO2 incubator has no controller. Values (no HEPES, 5 % CO2):
pH 7.44 / 7.23 / 7.08 / 6.86 at 0 / 10 / 15 / 20 mM lactate.

Low pH slows T-cell proliferation: growth x 1 / (1 + exp((6.95 - pH) / 0.05)) (lactic
acid and acidosis suppress T cells: Fischer K et al. 2007 *Blood*; midpoint and slope
*assumed*). Sources: Michl J, Park KC, Swietach P 2019 *Commun Biol* (bicarbonate/CO2
equilibria, HEPES capacity); ``docs/simulation-sources.md``, "Patients and culture".
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["MediumModel", "co2_for_setpoint", "medium_ph", "ph_growth_factor"]

_SOLUBILITY = 0.0307  # mM per mmHg CO2
_PK = 6.1


class MediumModel(BaseModel):
    """Buffer chemistry of the medium (RPMI-like; TexMACS / X-VIVO *assumed* alike)."""

    model_config = ConfigDict(frozen=True)

    bicarbonate_mm: float = Field(24.0, gt=0, description="HCO3_0 of fresh medium")
    non_bicarbonate_buffer_mm_per_ph: float = Field(
        4.0, ge=0, description="beta_nb: 4 without HEPES, about 15 with 25 mM HEPES"
    )
    reference_co2_pct: float = Field(5.0, gt=0, description="the gas fresh medium sits under")
    min_co2_pct: float = Field(2.0, gt=0, description="the controller's lowest CO2")
    ph_midpoint: float = Field(6.95, description="growth halves at this pH (assumed)")
    ph_slope: float = Field(0.05, gt=0, description="assumed")

    def fresh_ph(self) -> float:
        """pH_0: fresh medium at the reference CO2."""
        return _PK + math.log10(self.bicarbonate_mm / (_SOLUBILITY * _pco2(self.reference_co2_pct)))


def _pco2(co2_pct: float) -> float:
    return co2_pct * (760.0 - 47.0) / 100.0


def _bicarbonate(ph: float, co2_pct: float) -> float:
    return _SOLUBILITY * _pco2(co2_pct) * math.pow(10.0, ph - _PK)


def medium_ph(acid_mm: float, co2_pct: float, model: MediumModel | None = None) -> float:
    """The pH of medium carrying ``acid_mm`` lactic acid under ``co2_pct`` CO2."""
    m = model or MediumModel()
    ph0 = m.fresh_ph()

    def excess(ph: float) -> float:  # falls as pH rises
        titrated = m.bicarbonate_mm - _bicarbonate(ph, co2_pct)
        return titrated + m.non_bicarbonate_buffer_mm_per_ph * (ph0 - ph) - acid_mm

    low, high = 5.5, 8.5
    for _ in range(40):
        mid = 0.5 * (low + high)
        if excess(mid) > 0:
            low = mid
        else:
            high = mid
    return 0.5 * (low + high)


def co2_for_setpoint(
    acid_mm: float, setpoint_ph: float, max_co2_pct: float, model: MediumModel | None = None
) -> float:
    """The CO2 % a controller sets to hold ``setpoint_ph`` (clipped to its range)."""
    m = model or MediumModel()
    needed = (
        m.bicarbonate_mm
        + m.non_bicarbonate_buffer_mm_per_ph * (m.fresh_ph() - setpoint_ph)
        - acid_mm
    )
    if needed <= 0:
        return m.min_co2_pct
    co2 = needed / (_SOLUBILITY * math.pow(10.0, setpoint_ph - _PK)) * 100.0 / (760.0 - 47.0)
    return min(max(co2, m.min_co2_pct), max_co2_pct)


def ph_growth_factor(ph: float, model: MediumModel | None = None) -> float:
    """Growth multiplier at ``ph`` (1 near neutral, 0.5 at the midpoint)."""
    m = model or MediumModel()
    return 1.0 / (1.0 + math.exp((m.ph_midpoint - ph) / m.ph_slope))
