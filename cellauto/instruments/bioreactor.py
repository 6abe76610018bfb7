"""Bioreactor: setpoints, process values, seeding, reagents, feeding, sampling, harvest.

Modelled on a rocking-bag bioreactor controller (a LADS functional unit with
temperature, pH, dissolved-oxygen, rocker and pump control functions).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import AsyncIterator
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from cellauto.instruments.base import Instrument, command, query, stream
from cellauto.instruments.materials import Sample

__all__ = [
    "SETPOINT_LIMITS",
    "Agent",
    "Bioreactor",
    "CultureVolume",
    "HarvestResult",
    "ProcessValues",
    "Reagent",
    "Setpoints",
    "StaticCultureVessel",
]

#: Controller limits of each setpoint: (low, high, unit). Commands outside are refused.
SETPOINT_LIMITS: dict[str, tuple[float, float, str]] = {
    "temperature_c": (4.0, 40.0, "°C"),
    "ph": (6.0, 8.0, ""),
    "dissolved_oxygen_pct": (0.0, 100.0, "%"),
    "rocking_rate_rpm": (0.0, 40.0, "rpm"),
    "rocking_angle_deg": (0.0, 12.0, "°"),
    "perfusion_rate_ml_per_day": (0.0, 5000.0, "mL/day"),
    "co2_pct": (0.0, 20.0, "%"),
}

#: Agents a reagent may carry (cytokines): amounts per mL of reagent, IU for IL-2, ng
#: for the others.
Agent = Literal["IL-2", "IL-7", "IL-15", "IL-21"]


class Setpoints(BaseModel):
    """Control targets; ``None`` leaves a setpoint unchanged."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    temperature_c: float | None = None
    ph: float | None = None
    dissolved_oxygen_pct: float | None = None
    rocking_rate_rpm: float | None = None
    rocking_angle_deg: float | None = None
    perfusion_rate_ml_per_day: float | None = None
    co2_pct: float | None = None


class Reagent(BaseModel):
    """Something added to the culture: an activator, a viral vector, a cytokine."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, description='e.g. "TransAct", "CAR lentiviral vector"')
    kind: Literal["activation", "vector", "cytokine"]
    volume_ml: float = Field(gt=0, le=100)
    lot: str = ""
    target_cells: Literal["T", "NK"] = "T"
    moi: float | None = Field(None, gt=0, le=50, description="vector: multiplicity of infection")
    agents: dict[Agent, float] = Field(
        default_factory=dict,
        description='per mL of reagent: {"IL-2": 1e5} (IU/mL for IL-2, ng/mL for the others)',
    )
    to_medium_supply: bool = Field(
        False, description="also added to the perfusion medium, so perfusion does not wash it out"
    )


class ProcessValues(BaseModel):
    """Measured process values at one instant."""

    model_config = ConfigDict(frozen=True)

    temperature_c: float
    ph: float | None = Field(description="None: the vessel has no pH probe")
    dissolved_oxygen_pct: float | None = Field(description="None: no oxygen probe")
    culture_volume_ml: float = Field(ge=0)
    glucose_mmol_per_l: float
    lactate_mmol_per_l: float
    perfusion_rate_ml_per_day: float = Field(ge=0)
    rocking_rate_rpm: float = Field(ge=0)
    process_time_s: float


class CultureVolume(BaseModel):
    """The bag's contents after an addition."""

    model_config = ConfigDict(frozen=True)

    culture_volume_ml: float = Field(ge=0)


class HarvestResult(BaseModel):
    """The culture moved out of the bag."""

    model_config = ConfigDict(frozen=True)

    container_id: str
    volume_ml: float


class Bioreactor(Instrument):
    interface_name = "Bioreactor"

    @command
    @abstractmethod
    async def set_setpoints(self, setpoints: Setpoints) -> Setpoints:
        """Apply setpoints; returns all setpoints now in force."""

    @command
    @abstractmethod
    async def seed(
        self, source_container_id: str, volume_ml: float, medium_ml: float
    ) -> CultureVolume:
        """Transfer cells from a container and add medium."""

    @command
    @abstractmethod
    async def add_reagent(self, reagent: Reagent) -> CultureVolume:
        """Add an activator, a vector or a cytokine."""

    @command
    @abstractmethod
    async def feed(self, medium_ml: float) -> CultureVolume:
        """Add fresh medium."""

    @command
    @abstractmethod
    async def draw_sample(self, volume_ml: float) -> Sample:
        """Draw a sample aseptically from the culture."""

    @command
    @abstractmethod
    async def harvest(self, target_container_id: str) -> HarvestResult:
        """Move the whole culture into a new container."""

    @query
    @abstractmethod
    async def read_process_values(self) -> ProcessValues:
        """Current process values."""

    @stream
    @abstractmethod
    def process_values(self, interval_s: float) -> AsyncIterator[ProcessValues]:
        """Process values every ``interval_s`` seconds of process time."""


class StaticCultureVessel(Bioreactor):
    """A static gas-permeable vessel (G-Rex type) in an incubator: seeded, fed, sampled
    and harvested as a bag, but it does not rock or perfuse (set points asking for
    either are refused) and may have no pH or oxygen probe (``ProcessValues.ph`` None).
    A protocol asking for a :class:`Bioreactor` may be given one."""

    interface_name = "StaticCultureVessel"

    @command
    @abstractmethod
    async def reduce_volume(self, to_ml: float) -> CultureVolume:
        """Aspirate supernatant above the settled cells until ``to_ml`` remain."""
