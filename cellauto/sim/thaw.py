"""Post-thaw viability and recovery of a frozen container, and the simulated thawer.

The model (design §3.8; sources in docs/simulation-sources.md, "Freezing and thawing"):
the survival of viable cells through freeze and thaw is a Mazur two-factor inverted U in
the cooling rate through the phase change (too slow: solution effects; too fast:
intracellular ice; Mazur P, Leibo SP, Chu EHY 1972 *Exp Cell Res* 71:345), a Gaussian in
octaves around ``optimal_rate_c_per_min``, times penalties for a latent-heat rise above
1 °C, DMSO exposure before the freeze, rewarming during storage or an outage, the
patient's cryo-sensitivity (:class:`~cellauto.sim.patients.PatientProfile`) and the
thaw itself::

    v_post = v_pre · F_max · exp(-log2(r / r_opt)² / (2sigma²)) · (1 - 0.03·max(0, rise - 1))
             · (1 - 0.02·h_DMSO) · (1 - p_rewarm) · e_patient · F_thaw
    viable recovery = v_post / v_pre · (1 - lysis),  lysis = 0.05 + 0.1·(1 - v_post / v_pre)

``F_max`` 0.82 makes a 90-93 % product thaw at 72-76 % after a good curve (PROCESS.md:
70-75 % for HPC; Hunt CJ 2011 *Transfus Med Hemother* 38:107); lysed cells leave the count.
"""

from __future__ import annotations

import math
from dataclasses import replace

import anyio
from pydantic import BaseModel, ConfigDict, Field

from cellauto.errors import InstrumentError
from cellauto.instruments.thawer import Thawer, ThawResult
from cellauto.sim.base import SimInstrument, sim_identity
from cellauto.sim.material import Container, FrozenState
from cellauto.sim.world import SimWorld

__all__ = ["PostThaw", "SimThawer", "ThawModel", "post_thaw"]


class ThawModel(BaseModel):
    """Parameters of the post-thaw model (see the module)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_survival: float = Field(0.82, gt=0, le=1)
    """F_max: survival of viable cells after an optimal curve (NK: 0.78, Granzin 2017)."""
    optimal_rate_c_per_min: float = Field(-1.0, lt=0)
    width_octaves: float = Field(1.2, gt=0)
    """sigma of the inverted U, in octaves of cooling rate."""
    rise_allowance_c: float = Field(1.0, ge=0)
    rise_penalty_per_c: float = Field(0.03, ge=0)
    dmso_penalty_per_h: float = Field(0.02, ge=0)
    rewarming_penalty_per_c: float = Field(0.015, ge=0)
    no_phase_change_survival: float = Field(0.3, ge=0, le=1)
    thaw_factor: float = Field(1.0, gt=0, le=1)
    """F_thaw: 1.0 for a dry thawer or 37 °C bath to under 5 min; 0.9 for a slow thaw."""
    base_lysis: float = Field(0.05, ge=0, le=1)
    lysis_per_loss: float = Field(0.1, ge=0)
    duration_s: float = Field(240.0, gt=0)
    final_temperature_c: float = 4.0


class PostThaw(BaseModel):
    """What a thaw does to a container's cells."""

    model_config = ConfigDict(frozen=True)

    survival: float = Field(ge=0, le=1, description="v_post / v_pre")
    viable_recovery: float = Field(ge=0, le=1, description="viable cells after / before")

    def viability_pct(self, pre_viability_pct: float) -> float:
        return pre_viability_pct * self.survival


def post_thaw(
    frozen: FrozenState, *, cryo_sensitivity: float = 1.0, model: ThawModel | None = None
) -> PostThaw:
    """Survival and viable recovery of the cells of a container frozen as ``frozen``."""
    m = model or ThawModel()
    rate = frozen.cooling_rate_c_per_min
    if rate is None or rate >= 0:
        curve = m.no_phase_change_survival
    else:
        octaves = math.log2(rate / m.optimal_rate_c_per_min)
        curve = math.exp(-(octaves**2) / (2 * m.width_octaves**2))
    rise = 1 - min(
        0.5, m.rise_penalty_per_c * max(0.0, frozen.latent_heat_rise_c - m.rise_allowance_c)
    )
    dmso = 1 - min(0.5, m.dmso_penalty_per_h * frozen.dmso_exposure_h)
    rewarm = 1 - min(0.6, m.rewarming_penalty_per_c * frozen.rewarming_c)
    survival = m.max_survival * curve * rise * dmso * rewarm * cryo_sensitivity * m.thaw_factor
    survival = min(1.0, max(0.0, survival))
    lysis = min(1.0, m.base_lysis + m.lysis_per_loss * (1 - survival))
    return PostThaw(survival=survival, viable_recovery=survival * (1 - lysis))


def apply_thaw(container: Container, outcome: PostThaw) -> None:
    """Viable cells die or lyse as ``outcome`` says; lysed cells leave the count."""
    pre_viability = container.viability_pct / 100.0
    viable = container.viable_cells * outcome.viable_recovery
    viability = pre_viability * outcome.survival
    total = viable / viability if viability > 0 else container.dead_cells
    container.viable_cells, container.dead_cells = viable, max(0.0, total - viable)


class SimThawer(SimInstrument, Thawer):
    """A dry thawer: applies :func:`post_thaw` to the world container, once."""

    def __init__(
        self,
        world: SimWorld,
        serial: str = "TH-0001",
        *,
        model: ThawModel | None = None,
        cryo_sensitivity: float | None = None,
    ) -> None:
        super().__init__(world, sim_identity("SimThaw DT", serial))
        self.model = model or ThawModel()
        #: The patient's cryo-sensitivity (PatientProfile.cryo_sensitivity; world.patient's).
        patient = world.patient
        self.cryo_sensitivity = cryo_sensitivity or (patient.cryo_sensitivity if patient else 1.0)

    async def thaw(self, container_id: str) -> ThawResult:
        self.guard("thaw", command=True)
        container = self.world.container(container_id, where=self.where)
        frozen = container.frozen
        if frozen is None:
            raise InstrumentError(f"{self.where}: container {container_id!r} is not frozen")
        if frozen.thawed:
            raise InstrumentError(
                f"{self.where}: container {container_id!r} was thawed before; "
                "a container is thawed once"
            )
        await anyio.sleep(self.model.duration_s)
        outcome = post_thaw(frozen, cryo_sensitivity=self.cryo_sensitivity, model=self.model)
        apply_thaw(container, outcome)
        container.frozen = replace(frozen, thawed=True)
        container.history.append(
            f"thawed in {self.where}: survival {outcome.survival:.3f}, "
            f"viable recovery {outcome.viable_recovery:.3f}"
        )
        return ThawResult(
            container_id=container_id,
            duration_s=self.model.duration_s,
            final_temperature_c=self.model.final_temperature_c,
            process_time_s=self.world.clock.now_s(),
        )
