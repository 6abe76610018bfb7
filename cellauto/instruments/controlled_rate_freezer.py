"""ControlledRateFreezer: runs a freezing profile on product bags and reports the curve.

A profile is a start temperature and a list of chamber segments: a :class:`Ramp` moves
the chamber setpoint at a programmed rate to an end temperature, a :class:`Hold` keeps it
for a time. PROCESS.md's standard curve (:func:`standard_freeze_profile`) cools at
-1 °C/min from +4 °C to about -45 °C with heat-of-fusion compensation at the phase
change (a fast chamber drop that removes the latent heat released when the sample
freezes), then at -10 °C/min to -90 °C.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import AsyncIterator
from typing import Annotated, Literal

import anyio
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cellauto.instruments.base import Instrument, command, composite, query, require_range, stream
from cellauto.instruments.limits import LimitFlag

__all__ = [
    "ControlledRateFreezer",
    "FreezeProfile",
    "FreezeResult",
    "FreezeSegment",
    "FreezerReading",
    "FreezerState",
    "FreezerStatus",
    "Hold",
    "Ramp",
    "standard_freeze_profile",
]

FreezerState = Literal["idle", "loaded", "running", "complete", "failed"]


class Ramp(BaseModel):
    """Move the chamber setpoint at ``rate_c_per_min`` until it reaches ``end_temperature_c``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["ramp"] = "ramp"
    rate_c_per_min: float = Field(ge=-50.0, le=50.0)
    end_temperature_c: float

    @field_validator("rate_c_per_min")
    @classmethod
    def _non_zero(cls, value: float) -> float:
        if value == 0:
            raise ValueError("a ramp rate of 0 °C/min never ends; use a Hold segment")
        return value


class Hold(BaseModel):
    """Keep the chamber setpoint for ``duration_min`` minutes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["hold"] = "hold"
    duration_min: float = Field(gt=0)


FreezeSegment = Annotated[Ramp | Hold, Field(discriminator="kind")]


class FreezeProfile(BaseModel):
    """A named freezing program: chamber segments run in order from ``start_temperature_c``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    segments: list[FreezeSegment] = Field(min_length=1, max_length=50)
    start_temperature_c: float = 4.0

    @model_validator(mode="after")
    def _ramps_reach_their_end(self) -> FreezeProfile:
        setpoint = self.start_temperature_c
        for index, segment in enumerate(self.segments):
            if isinstance(segment, Ramp):
                if (segment.end_temperature_c - setpoint) * segment.rate_c_per_min <= 0:
                    raise ValueError(
                        f"segments[{index}]: a ramp at {segment.rate_c_per_min:g} °C/min cannot "
                        f"go from {setpoint:g} °C to {segment.end_temperature_c:g} °C; "
                        "use a negative rate to cool and a positive rate to warm"
                    )
                setpoint = segment.end_temperature_c
        return self


class FreezerReading(BaseModel):
    """Chamber and sample-probe temperatures at one instant of a run."""

    model_config = ConfigDict(frozen=True)

    chamber_temperature_c: float
    sample_temperature_c: float
    segment_index: int | None = Field(description="segment in progress; None before a run")
    process_time_s: float


class FreezerStatus(BaseModel):
    """Where the freezer is: its state, the segment in progress and the run time."""

    model_config = ConfigDict(frozen=True)

    state: FreezerState
    segment_index: int | None = Field(description="segment in progress (last once ended)")
    elapsed_min: float = Field(ge=0, description="run time since start, outages included")
    loaded_container_ids: list[str]


class FreezeResult(BaseModel):
    """The outcome of one run, with the features of the sample curve QA reviews."""

    model_config = ConfigDict(frozen=True)

    end_state: Literal["complete", "failed"]
    profile_name: str
    container_ids: list[str]
    final_sample_temperature_c: float
    phase_change_detected: bool
    phase_change_process_time_s: float | None
    phase_change_temperature_c: float | None = Field(description="lowest point of supercooling")
    max_latent_heat_rise_c: float = Field(ge=0, description="rise of the sample after nucleation")
    cooling_rate_through_phase_change_c_per_min: float | None
    power_interruptions: int = Field(ge=0)
    message: str
    load_ml: float | None = Field(None, ge=0, description="liquid in the chamber; None: unknown")
    limit_flags: list[LimitFlag] = Field(
        default_factory=list, description="limits met or passed (a load over the rated load)"
    )


class ControlledRateFreezer(Instrument):
    interface_name = "ControlledRateFreezer"

    #: Chamber temperatures a profile may ask for (°C).
    CHAMBER_MIN_C = -180.0
    CHAMBER_MAX_C = 40.0

    @command
    @abstractmethod
    async def load_profile(self, profile: FreezeProfile) -> FreezerStatus:
        """Load a profile (refused while a run is in progress or outside the chamber limits)."""

    @command
    @abstractmethod
    async def start(self, container_ids: list[str]) -> FreezerStatus:
        """Start the loaded profile with these containers in the chamber."""

    @query
    @abstractmethod
    async def status(self) -> FreezerStatus:
        """State, segment in progress and run time."""

    @stream
    @abstractmethod
    def temperatures(self, interval_s: float) -> AsyncIterator[FreezerReading]:
        """Chamber and sample temperatures every ``interval_s``; ends when the run ends."""

    @query
    @abstractmethod
    async def result(self) -> FreezeResult:
        """The result of the last run (an error while none has ended)."""

    @composite
    async def run_profile(
        self,
        profile: FreezeProfile,
        container_ids: list[str],
        poll_interval_s: float = 60.0,
    ) -> FreezeResult:
        """Load ``profile``, freeze ``container_ids`` and wait for the run to end."""
        require_range(self, "poll_interval_s", poll_interval_s, low=1.0, unit="s")
        await self.load_profile(profile)
        status = await self.start(container_ids)
        while status.state == "running":
            await anyio.sleep(poll_interval_s)
            status = await self.status()
        return await self.result()


#: Heat-of-fusion compensation per fill: (largest fill mL, drop to °C, return to °C), tuned on
#: the simulated freezer (thickness model, 150 cm² bag face) so the sample cools at about
#: -1 °C/min from nucleation to -20 °C (docs/simulation-sources.md, "Freezing and thawing").
COMPENSATION_BY_FILL: tuple[tuple[float, float, float], ...] = (
    (35.0, -40.0, -20.0),
    (60.0, -50.0, -20.0),
    (85.0, -60.0, -25.0),
    (math.inf, -60.0, -35.0),
)
#: Up to this fill a container is a cryovial: a plain -1 °C/min ramp, no compensation.
VIAL_MAX_FILL_ML = 5.0


def standard_freeze_profile(
    *,
    heat_of_fusion_compensation: bool = True,
    final_hold_min: float = 30.0,
    fill_ml: float = 70.0,
) -> FreezeProfile:
    """PROCESS.md's curve for a product bag (or cryovial) filled with ``fill_ml`` in 5-10 % DMSO.

    -1 °C/min from +4 °C. With compensation, when the chamber reaches -10 °C (the sample,
    lagging a few °C behind, is then supercooled and about to freeze) it drops at -25 °C/min
    and comes back at +10 °C/min, pulling out the latent heat; the thicker the fill, the
    deeper the drop and the colder the return (:data:`COMPENSATION_BY_FILL`). Then -1 °C/min
    for 5 °C, -10 °C/min to -90 °C and a hold so the sample reaches -90 °C. A cryovial
    (up to 5 mL) gets no compensation.
    """
    segments: list[Ramp | Hold] = []
    compensate = heat_of_fusion_compensation and fill_ml > VIAL_MAX_FILL_ML
    if compensate:
        _, drop_c, return_c = next(row for row in COMPENSATION_BY_FILL if fill_ml <= row[0])
        segments += [
            Ramp(rate_c_per_min=-1.0, end_temperature_c=-10.0),
            Ramp(rate_c_per_min=-25.0, end_temperature_c=drop_c),
            Ramp(rate_c_per_min=10.0, end_temperature_c=return_c),
            Ramp(rate_c_per_min=-1.0, end_temperature_c=return_c - 5.0),
        ]
    else:
        segments.append(Ramp(rate_c_per_min=-1.0, end_temperature_c=-45.0))
    segments += [
        Ramp(rate_c_per_min=-10.0, end_temperature_c=-90.0),
        Hold(duration_min=final_hold_min),
    ]
    name = "standard -1 °C/min" + (" with compensation" if compensate else "")
    if compensate and fill_ml != 70.0:
        name += f" for {fill_ml:g} mL"
    return FreezeProfile(name=name, segments=segments)
