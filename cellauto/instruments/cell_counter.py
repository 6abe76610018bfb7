"""CellCounter: counts a sample (total and viable cells, viability, diameter)."""

from __future__ import annotations

from abc import abstractmethod
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from cellauto.instruments.base import Instrument, command
from cellauto.instruments.materials import Sample

#: Where a count's (diluted) concentration lies against the counter's linear range.
RangeFlag = Literal["in_range", "below_range", "above_range"]


class CellCount(BaseModel):
    """One counting result, as a cell counter reports it."""

    model_config = ConfigDict(frozen=True)

    sample_id: str
    total_cells_per_ml: float = Field(ge=0)
    viable_cells_per_ml: float = Field(ge=0)
    viability_pct: float = Field(ge=0, le=100)
    mean_diameter_um: float = Field(ge=0)
    dilution: float = Field(1.0, gt=0)
    operator: str
    counted_at_process_time_s: float
    instrument_serial: str
    range_flag: RangeFlag = Field(
        "in_range", description="the counted (diluted) concentration against the linear range"
    )


class CellCounter(Instrument):
    interface_name = "CellCounter"

    @command
    @abstractmethod
    async def count(
        self, sample: Sample, *, operator: str = "system", dilution: float = 1.0
    ) -> CellCount:
        """Count ``sample`` (consumes it); takes about 90 s on a real counter.

        ``dilution``: the sample was diluted this many times before counting; the
        result's concentrations are of the undiluted sample."""
