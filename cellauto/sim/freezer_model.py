"""The thermal model behind the simulated controlled-rate freezer (see :mod:`.freezer`).

The chamber is an energy balance (design §3.8; sources in docs/simulation-sources.md,
"Freezing and thawing")::

    C_ch dT_ch/dt = -P_LN2 + sum_i UA_i (T_i - T_ch) + UA_amb (T_amb - T_ch)
    P_LN2 = clip(K_p (T_ch - T_set) + P_ff, 0, P_max)

``P_ff`` is the controller's feed-forward for the empty chamber (its heat capacity times the
programmed rate, and the ambient leak): the controller does not know the load, so every bag's
sensible and latent heat warms the chamber by ``load / K_p`` and, when ``P_max`` is reached,
the chamber cannot follow the profile at all. Each bag has its own time constant from its
fill thickness, ``tau = tau_ref (L / L_ref)^2`` (a slab's conduction time scales with the
square of its thickness), its own nucleation temperature and its own latent heat.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from cellauto.instruments.controlled_rate_freezer import FreezeProfile, FreezeResult, Ramp

__all__ = [
    "STEP_MIN",
    "Bag",
    "FreezeCurve",
    "FreezeQuality",
    "FreezeRun",
    "FreezerModel",
    "bag_time_constant_min",
]

STEP_MIN = 5.0 / 60.0


class FreezerModel(BaseModel):
    """Thermal and quality parameters of the simulated freezer and its bags."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    chamber_time_constant_min: float = Field(1.0, gt=0)
    """C_ch / K_p: how fast the controller pulls the chamber to its setpoint."""
    chamber_heat_capacity_j_per_c: float = Field(1000.0, gt=0)
    """C_ch: chamber wall, rack and air (*assumed*)."""
    max_cooling_w: float = Field(800.0, gt=0)
    """P_max of the LN2 valve (*assumed*: about -48 °C/min with the chamber empty)."""
    ambient_ua_w_per_c: float = Field(0.5, ge=0)
    """Heat leak of the insulated chamber (*assumed*)."""
    rated_load_ml: float = Field(1000.0, gt=0)
    """Liquid the freezer is rated to freeze in one run (*assumed*)."""
    reference_thickness_mm: float = Field(4.0, gt=0)
    sample_time_constant_min: float = Field(4.0, gt=0)
    """tau_ref: a bag's time constant at ``reference_thickness_mm`` of fill."""
    bag_face_area_cm2: float = Field(150.0, gt=0)
    """One face of a CryoMACS-type 250 mL freezing bag (?): 70 mL fill is 4.7 mm thick."""
    vial_max_volume_ml: float = Field(5.0, gt=0)
    """Containers up to this volume are cryovials, with ``vial_time_constant_min``."""
    vial_time_constant_min: float = Field(2.0, gt=0)
    freezing_point_c: float = Field(-3.0, lt=0)
    nucleation_min_c: float = -8.0
    nucleation_max_c: float = -5.0
    latent_heat_j_per_ml: float = Field(300.0, gt=0)
    heat_capacity_j_per_ml_c: float = Field(3.8, gt=0)
    freezable_fraction: float = Field(0.9, gt=0, lt=1)
    ice_growth_time_constant_min: float = Field(0.5, gt=0)
    ambient_c: float = 20.0
    power_loss_warming_c_per_min: float = Field(1.0, ge=0)
    chamber_noise_c: float = Field(0.1, ge=0)
    sample_noise_c: float = Field(0.05, ge=0)
    good_curve_viability_factor: float = Field(0.74, gt=0, le=1)
    target_rate_c_per_min: float = Field(-1.0, lt=0)
    rate_window_end_c: float = -20.0
    rate_penalty_per_octave: float = Field(0.12, ge=0)
    rise_allowance_c: float = Field(1.0, ge=0)
    rise_penalty_per_c: float = Field(0.03, ge=0)
    interruption_penalty: float = Field(0.02, ge=0, le=1)
    rewarming_penalty_per_c: float = Field(0.015, ge=0)
    rewarming_limit_c: float = -60.0


class FreezeQuality(BaseModel):
    """What a frozen container keeps of its curve, for a post-thaw model."""

    model_config = ConfigDict(frozen=True)

    container_id: str
    viability_factor: float = Field(ge=0, le=1, description="post-thaw / pre-freeze viability")
    max_rewarming_c: float = Field(ge=0, description="rewarming after an outage")
    frozen_at_process_time_s: float
    result: FreezeResult


@dataclass
class FreezeCurve:
    """Features of the sample curve, gathered step by step (times in run minutes)."""

    nucleation: tuple[float, float] | None = None  # (min, °C)
    peak_c: float = -math.inf
    window_end: tuple[float, float] | None = None  # (min, °C) on reaching the window end
    powered: bool = True
    interruptions: int = 0
    rewarm_ref_c: float | None = None  # lowest sample °C since an outage after nucleation
    max_rewarming_c: float = 0.0
    rewarm_peak_c: float | None = None  # highest °C when rewarmed above the limit

    @property
    def rise_c(self) -> float:
        return max(0.0, self.peak_c - self.nucleation[1]) if self.nucleation else 0.0

    @property
    def rate_c_per_min(self) -> float | None:
        """Mean sample rate from nucleation down to the rate window's end."""
        if self.nucleation is None or self.window_end is None:
            return None
        span = max(self.window_end[0] - self.nucleation[0], STEP_MIN)
        return (self.window_end[1] - self.nucleation[1]) / span

    def observe(
        self, t_min: float, sample_c: float, phase: str, powered: bool, m: FreezerModel
    ) -> None:
        if not powered and self.powered:
            self.interruptions += 1
            if self.nucleation is not None and self.rewarm_ref_c is None:
                self.rewarm_ref_c = sample_c
        self.powered = powered
        if self.nucleation is None and phase == "freezing":
            self.nucleation, self.peak_c = (t_min, sample_c), sample_c
        elif self.nucleation is not None and self.window_end is None:
            self.peak_c = max(self.peak_c, sample_c)
            if sample_c <= m.rate_window_end_c:
                self.window_end = (t_min, sample_c)
        if self.rewarm_ref_c is not None:
            self.rewarm_ref_c = min(self.rewarm_ref_c, sample_c)
            self.max_rewarming_c = max(self.max_rewarming_c, sample_c - self.rewarm_ref_c)
            if sample_c - self.rewarm_ref_c > 0.5 and sample_c > m.rewarming_limit_c:
                self.rewarm_peak_c = max(self.rewarm_peak_c or -math.inf, sample_c)


@dataclass
class Bag:
    """One container in the chamber: its own lag, nucleation and latent heat."""

    container_id: str
    volume_ml: float
    tau_min: float
    nucleation_at_c: float
    sample_c: float
    phase: str = "liquid"  # liquid, freezing, solid
    released: float = 0.0  # share of the latent heat released

    def heat_capacity_j_per_c(self, m: FreezerModel) -> float:
        return self.volume_ml * m.heat_capacity_j_per_ml_c

    def step(self, m: FreezerModel, chamber_c: float) -> float:
        """Advance one step against ``chamber_c``; the heat (J) it gave the chamber."""
        before = self.sample_c
        solid_below_c = m.freezing_point_c / (1 - m.freezable_fraction)
        latent_c = m.latent_heat_j_per_ml / m.heat_capacity_j_per_ml_c
        if self.phase != "freezing":
            lag = -math.expm1(-STEP_MIN / self.tau_min)
            self.sample_c += (chamber_c - self.sample_c) * lag
            if self.phase == "liquid" and self.sample_c <= self.nucleation_at_c:
                self.phase = "freezing"
            elif self.phase == "solid" and self.sample_c > solid_below_c:
                self.phase = "freezing"  # melting back
            return (before - self.sample_c) * self.heat_capacity_j_per_c(m)
        equilibrium_c = m.freezing_point_c / (1 - m.freezable_fraction * self.released)
        release = (equilibrium_c - self.sample_c) / m.ice_growth_time_constant_min
        pull = (chamber_c - self.sample_c) / self.tau_min
        self.sample_c += (release + pull) * STEP_MIN
        released = min(1.0, max(0.0, self.released + release * STEP_MIN / latent_c))
        latent_j = (released - self.released) * latent_c * self.heat_capacity_j_per_c(m)
        self.released = released
        if self.released >= 1.0:
            self.phase = "solid"
        return (before - self.sample_c) * self.heat_capacity_j_per_c(m) + latent_j


def bag_time_constant_min(m: FreezerModel, volume_ml: float) -> float:
    """A container's time constant: a cryovial's, or a bag's from its fill thickness.

    A filled freezing bag is a thin slab (Biot number h L / k ~ 0.1 in a forced-air chamber):
    the air film, not conduction inside, limits it, so its lag is lumped, rho c V / (h A),
    proportional to the fill thickness V / A (not to volume^0.5).
    """
    if volume_ml <= m.vial_max_volume_ml:
        return m.vial_time_constant_min
    thickness_mm = 10.0 * volume_ml / m.bag_face_area_cm2
    return m.sample_time_constant_min * thickness_mm / m.reference_thickness_mm


@dataclass
class FreezeRun:
    """One run: the profile position, the chamber and every container; the probe is bag 0."""

    profile: FreezeProfile
    container_ids: list[str]
    start_h: float
    start_s: float
    bags: list[Bag]
    setpoint_c: float
    chamber_c: float
    steps: int = 0
    segment: int = 0
    hold_min: float = 0.0
    saturated_min: float = 0.0  # minutes the LN2 valve was fully open and short of the setpoint
    max_setpoint_error_c: float = 0.0
    curve: FreezeCurve = field(default_factory=FreezeCurve)

    @property
    def sample_c(self) -> float:
        return self.bags[0].sample_c

    @property
    def phase(self) -> str:
        return self.bags[0].phase

    @property
    def load_ml(self) -> float:
        return sum(bag.volume_ml for bag in self.bags)

    @property
    def t_min(self) -> float:
        return self.steps * STEP_MIN

    @property
    def ended(self) -> bool:
        return self.segment >= len(self.profile.segments)

    @property
    def segment_index(self) -> int:
        return min(self.segment, len(self.profile.segments) - 1)

    def describe(self) -> str:
        n = len(self.profile.segments)
        return f"{self.profile.name!r}, segment {self.segment_index + 1}/{n}, {self.t_min:.0f} min"

    def step(self, m: FreezerModel, powered: bool) -> None:
        chamber_c = self.chamber_c
        heat_j = sum(bag.step(m, chamber_c) for bag in self.bags)
        if powered:
            before = self.setpoint_c
            self._follow_profile(STEP_MIN)
            c_ch = m.chamber_heat_capacity_j_per_c
            leak = m.ambient_ua_w_per_c * 60.0 * (m.ambient_c - chamber_c)  # J/min
            feed_forward = c_ch * (before - self.setpoint_c) / STEP_MIN + leak
            k_p = c_ch / m.chamber_time_constant_min
            wanted = k_p * (chamber_c - self.setpoint_c) + feed_forward
            p_max = m.max_cooling_w * 60.0
            power = min(p_max, max(0.0, wanted))
            self.chamber_c += (heat_j + (leak - power) * STEP_MIN) / c_ch
            if wanted > p_max and self.chamber_c > self.setpoint_c + 1.0:
                self.saturated_min += STEP_MIN
            if self.profile.segments and self.steps * STEP_MIN > 5.0:
                error = self.chamber_c - self.setpoint_c
                self.max_setpoint_error_c = max(self.max_setpoint_error_c, error)
        elif self.chamber_c < m.ambient_c:
            warmed = self.chamber_c + m.power_loss_warming_c_per_min * STEP_MIN
            self.chamber_c = min(m.ambient_c, warmed)
        self.steps += 1
        self.curve.observe(self.t_min, self.sample_c, self.phase, powered, m)

    def _follow_profile(self, dt_min: float) -> None:
        while dt_min > 1e-12 and not self.ended:
            segment = self.profile.segments[self.segment]
            if isinstance(segment, Ramp):
                rate = segment.rate_c_per_min
                need = max(0.0, (segment.end_temperature_c - self.setpoint_c) / rate)
                used = min(dt_min, need)
                self.setpoint_c += rate * used
            else:
                need = segment.duration_min - self.hold_min
                used = min(dt_min, need)
                self.hold_min += used
            dt_min -= used
            if used >= need - 1e-12:
                if isinstance(segment, Ramp):
                    self.setpoint_c = segment.end_temperature_c
                self.segment, self.hold_min = self.segment + 1, 0.0
