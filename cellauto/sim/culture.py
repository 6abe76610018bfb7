"""Cell expansion in a bioreactor bag: growth, metabolism and death.

Expanding cells (T cells after CD3/CD28 activation, or NK cells after cytokine
activation) grow after a lag with Monod kinetics on glucose, inhibited by lactate,
and logistic saturation at the bag's carrying capacity (PROCESS.md):

    mu  = mu_max * Glc / (Ks + Glc) * Ki / (Ki + Lac) * f(T),   mu_max = ln 2 / t_d
    dX/dt = mu * X * (1 - X_total / X_max) - k_d * X
    q_glc = mu_growth / Y + m          (mmol per cell per hour)
    dLac  = 1.8 * glucose used

Other cells decline slowly; the residual T cells of an NK culture grow in its
IL-2/IL-15 at ``nk_culture_t_growth_factor`` of the NK cells' rate (homeostatic
proliferation of memory T and NKT cells, without TCR stimulus: Zhang X et al. 1998
*Immunity*; the share *assumed*) and die at the base rate. Viable cells die at a base
rate, faster when starved of glucose, overgrown, too warm, or contaminated. Perfusion
exchanges medium (cells are retained). All rates are per hour; all figures are
:class:`CultureModel` parameters.
"""

from __future__ import annotations

import math

from cellauto.sim.cytokines import Cytokines
from cellauto.sim.feeders import (
    NK_FEEDER_MIN_SUPPORT,
    feeder_death,
    feeder_stimulus,
    feeder_target,
)
from cellauto.sim.kinetics import CultureModel, monocyte_factor
from cellauto.sim.material import Container
from cellauto.sim.medium import MediumModel, co2_for_setpoint, medium_ph, ph_growth_factor

__all__ = ["Culture", "CultureModel"]


class Culture:
    """The contents of one bag, advanced lazily to the time it is looked at."""

    def __init__(self, cells: Container, now_h: float, model: CultureModel | None = None):
        self.model = model or CultureModel()
        self.cells = cells
        self.glucose_mmol_per_l = self.model.medium_glucose_mmol_per_l
        self.lactate_mmol_per_l = 0.0
        self.temperature_c = 37.0
        self.perfusion_ml_per_h = 0.0
        self.activated_at_h: float | None = None
        self.expanding: str = "T"
        self.extra_death_rate_per_h = 0.0
        self.temperature_offset_c: list[tuple[float, float, float]] = []  # (from, to, delta)
        self.contaminated_from_h: float | None = None
        self.contamination_death_rate_per_h = 0.0
        self.cytokines = Cytokines()
        #: An activation reagent with no agents: full support of the expanding cells
        #: (how protocols before issue 14 stimulate NK with a cytokine cocktail).
        self.full_support = False
        #: Strength of a stimulus that is not full (feeders, tumour antigen): 0..1.
        self.stimulus = 1.0
        self.nk_feeders = False
        self.medium = MediumModel()
        #: pH set point a controller holds by lowering CO2 (None: no controller).
        self.ph_setpoint: float | None = None
        self.co2_pct = self.medium.reference_co2_pct
        """The gas: the controller's highest CO2 with a set point, else the CO2 itself."""
        self._now_h = now_h
        if cells.contamination_death_rate_per_h > 0:  # contaminated cells stay contaminated
            self.contaminated_from_h = now_h
            self.contamination_death_rate_per_h = cells.contamination_death_rate_per_h
        feeders = cells.feeders
        if feeders is not None and feeders.viable > 0:  # irradiated feeders stimulate
            target = feeder_target(feeders)
            share = cells.nk_fraction if target == "NK" else cells.t_cell_fraction
            self.activate(now_h, target, full_support=False)
            self.stimulus = feeder_stimulus(feeders, cells.viable_cells * share)
            self.nk_feeders = target == "NK"
        elif cells.antigen_stimulus > 0:  # a tumour digest: TIL see their antigen
            self.activate(now_h, "T", full_support=False)
            self.stimulus = cells.antigen_stimulus

    # -- inputs --------------------------------------------------------------------------
    def activate(self, now_h: float, target: str, *, full_support: bool = True) -> None:
        """A stimulus for ``target`` cells: growth starts after the lag. ``full_support``:
        the stimulus carries its own support (CD3/CD28 beads; a cytokine cocktail of
        unknown make-up); False: the culture's cytokines give it (:mod:`.cytokines`)."""
        self.advance_to(now_h)
        if self.activated_at_h is None:
            self.activated_at_h = now_h
            self.expanding = target
        if target == self.expanding:
            self.full_support = self.full_support or full_support

    def add_agents(
        self, agents: dict[str, float], reagent_ml: float, now_h: float, *, to_supply: bool
    ) -> None:
        """Cytokines of a reagent whose ``reagent_ml`` is already in the culture volume."""
        self.advance_to(now_h)
        volume = self.cells.volume_ml
        for agent in self.cytokines.concentration:  # the reagent's volume dilutes
            self.cytokines.concentration[agent] *= (volume - reagent_ml) / volume
        self.cytokines.add(agents, reagent_ml, volume, to_medium_supply=to_supply)

    def add_medium(self, volume_ml: float, now_h: float) -> None:
        self.advance_to(now_h)
        c = self.cells
        total = c.volume_ml + volume_ml
        self.glucose_mmol_per_l = (
            self.glucose_mmol_per_l * c.volume_ml + self.model.medium_glucose_mmol_per_l * volume_ml
        ) / total
        self.lactate_mmol_per_l = self.lactate_mmol_per_l * c.volume_ml / total
        self.cytokines.dilute(c.volume_ml, total)
        c.volume_ml = total

    def actual_temperature_c(self, at_h: float) -> float:
        offset = sum(d for start, end, d in self.temperature_offset_c if start <= at_h < end)
        return self.temperature_c + offset

    # -- dynamics ------------------------------------------------------------------------
    def advance_to(self, now_h: float) -> None:
        """Integrate whole steps on the fixed grid anchored at seeding, up to ``now_h``.

        A step is never split: the state between grid points is the last grid point's
        (at most one step old), so how often a protocol looks (a temperature watch
        every 5 or 15 min) never changes what happens to the cells (design §6.1).
        """
        step = self.model.step_h
        while self._now_h + step <= now_h + 1e-9:
            self._step(self._now_h, step)
            self._now_h += step

    def _support(self, at_h: float) -> float:
        """Stimulus and cytokine support of the expanding cells' growth (0: none)."""
        m, cyt = self.model, self.cytokines
        if self.activated_at_h is None:  # resting T cells: IL-2 alone hardly divides them
            if self.expanding != "T":
                return 0.0
            return cyt.model.resting_t_factor * cyt.effect("T", m.il2_sensitivity)
        if at_h < self.activated_at_h + m.lag_h:
            return 0.0
        if self.expanding == "NK":
            if self.full_support:
                return 1.0
            return self.stimulus * self._nk_effect()
        effect = cyt.effect("T", m.il2_sensitivity)
        if self.full_support:  # CD3/CD28: the cells' own IL-2 carries them
            return 1.0 + cyt.model.activated_t_gain * effect
        # feeders or antigen: autocrine support 0.35, the rest from cytokines (design §3.3)
        return self.stimulus * (0.35 + (1.0 + cyt.model.activated_t_gain - 0.35) * effect)

    def _nk_effect(self) -> float:
        """Cytokine support of NK cells; K562 feeders' membrane IL-21 gives at least 0.7."""
        effect = self.cytokines.effect("NK", self.model.il2_sensitivity)
        if self.nk_feeders and self.cells.feeders is not None and self.cells.feeders.viable > 0:
            effect = max(effect, NK_FEEDER_MIN_SUPPORT)
        return effect

    def ph(self) -> float:
        """The medium's pH now (bicarbonate buffer, lactic acid, CO2: :mod:`.medium`)."""
        acid = max(self.lactate_mmol_per_l, 0.0)
        co2 = self.co2_pct
        if self.ph_setpoint is not None:
            co2 = co2_for_setpoint(acid, self.ph_setpoint, self.co2_pct, self.medium)
            if self.medium.min_co2_pct < co2 < self.co2_pct:
                return self.ph_setpoint  # the controller holds it
        return medium_ph(acid, co2, self.medium)

    def capacity_per_ml(self) -> float:
        """Carrying capacity in viable cells per mL (a G-Rex's is per membrane area)."""
        m = self.model
        if m.max_viable_cells is not None and self.cells.volume_ml > 0:
            return m.max_viable_cells / self.cells.volume_ml
        return m.max_viable_cells_per_ml

    def _growth_rate(self, at_h: float, temperature_c: float) -> float:
        m = self.model
        support = self._support(at_h)
        if support <= 0.0:
            return 0.0
        glc, lac = max(self.glucose_mmol_per_l, 0.0), self.lactate_mmol_per_l
        mu = math.log(2) / m.doubling_time_h * support
        mu *= glc / (m.glucose_ks_mmol_per_l + glc) * m.lactate_ki_mmol_per_l
        mu /= m.lactate_ki_mmol_per_l + lac
        # no growth below 30 °C, full at the optimum
        warmth = (temperature_c - 30.0) / (m.optimum_temperature_c - 30.0)
        mu *= monocyte_factor(self.cells.monocyte_fraction, m)
        mu *= ph_growth_factor(self.ph(), self.medium)
        return mu * min(max(warmth, 0.0), 1.0)

    def _step(self, at_h: float, dt: float) -> None:
        m, c = self.model, self.cells
        if c.volume_ml <= 0 or c.viable_cells <= 0:
            return
        attr = "nk_fraction" if self.expanding == "NK" else "t_cell_fraction"
        expanding = c.viable_cells * getattr(c, attr)
        # residual T cells of an NK culture: IL-2/IL-15 drive their homeostatic growth
        bystanders = 0.0
        if self.expanding == "NK" and self.activated_at_h is not None:
            bystanders = c.viable_cells * c.t_cell_fraction
        others = max(c.viable_cells - expanding - bystanders, 0.0)
        bystanders_before = bystanders
        density = (c.viable_cells) / c.volume_ml
        temperature = self.actual_temperature_c(at_h)
        mu = self._growth_rate(at_h, temperature)
        capacity = self.capacity_per_ml()
        room = 1.0 - density / capacity
        grown = mu * expanding * max(room, 0.0) * dt
        grown_bystanders = m.nk_culture_t_growth_factor * mu * bystanders * max(room, 0.0) * dt
        kd = m.death_rate_per_h + self.extra_death_rate_per_h
        if self.glucose_mmol_per_l < m.starvation_glucose_mmol_per_l:
            kd += m.starvation_death_rate_per_h
        crowding = density / capacity
        if crowding > m.crowding_from_fraction:  # overgrown: death rises towards capacity
            excess = (crowding - m.crowding_from_fraction) / (1 - m.crowding_from_fraction)
            kd += m.overgrowth_death_rate_per_h * min(excess, 2.0)
        if temperature > 39.0:
            kd += 0.02 * (temperature - 39.0)
        if self.contaminated_from_h is not None and at_h >= self.contaminated_from_h:
            kd += self.contamination_death_rate_per_h
            c.contaminated = True  # the contamination is in the cells: it goes where they go
            c.contamination_death_rate_per_h = max(
                c.contamination_death_rate_per_h, self.contamination_death_rate_per_h
            )
        kd_expanding = kd
        if self.expanding == "NK" and self.activated_at_h is not None and not self.full_support:
            withdrawal = self.cytokines.model.nk_withdrawal_death_rate_per_h
            kd_expanding += withdrawal * (1.0 - self._nk_effect())
        self.cytokines.decay(dt)
        feeders = c.feeders.viable if c.feeders is not None else 0.0
        if c.feeders is not None:
            feeder_death(c.feeders, dt)
        dying_expanding = expanding * (1 - math.exp(-kd_expanding * dt))
        dying_others = others * (1 - math.exp(-(kd + m.other_cells_death_rate_per_h) * dt))
        dying_bystanders = bystanders * (1 - math.exp(-kd * dt))
        expanding += grown - dying_expanding
        others -= dying_others
        bystanders += grown_bystanders - dying_bystanders
        grown += grown_bystanders  # for the glucose they use
        # metabolism (mmol/L): uptake by every viable cell, growth-linked for expanding ones
        per_ml = 1000.0 / c.volume_ml  # cells in the bag -> per litre
        used = (grown / m.yield_cells_per_mmol_glucose) * per_ml
        used += (
            m.maintenance_mmol_per_cell_h
            * (expanding + others + bystanders + feeders)
            * dt
            * per_ml
        )
        used = min(used, max(self.glucose_mmol_per_l, 0.0))
        self.glucose_mmol_per_l -= used
        self.lactate_mmol_per_l += m.lactate_per_glucose * used
        if self.perfusion_ml_per_h > 0:
            share = min(1.0, self.perfusion_ml_per_h * dt / c.volume_ml)
            self.glucose_mmol_per_l += share * (
                m.medium_glucose_mmol_per_l - self.glucose_mmol_per_l
            )
            self.lactate_mmol_per_l -= share * self.lactate_mmol_per_l
            self.cytokines.exchange(share)
        # write back; phenotype shares follow who grew and who died
        other_attr = "t_cell_fraction" if attr == "nk_fraction" else "nk_fraction"
        others_before = c.viable_cells - c.viable_cells * getattr(c, attr) - bystanders_before
        other_kind_cells = c.viable_cells * getattr(c, other_attr) - bystanders_before
        if others_before > 0:
            other_kind_cells *= others / others_before
        other_kind_cells += bystanders
        total = expanding + others + bystanders
        c.dead_cells += dying_expanding + dying_others + dying_bystanders
        c.viable_cells = total
        if total > 0:
            setattr(c, attr, expanding / total)
            setattr(c, other_attr, min(other_kind_cells / total, 1.0 - expanding / total))
