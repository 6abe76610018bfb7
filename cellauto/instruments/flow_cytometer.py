"""FlowCytometer: immunophenotype of a sample (viability, CD3, CD4, CD8, CAR, CD56)."""

from __future__ import annotations

from abc import abstractmethod
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from cellauto.instruments.base import Instrument, command
from cellauto.instruments.materials import Sample

__all__ = ["FlowCytometer", "Immunophenotype"]


class Immunophenotype(BaseModel):
    """One acquisition: percentages of the parent populations named in ``*_of``.

    ``viable_pct`` is of all acquired leukocyte events; ``cd3_pct`` and ``cd56_pct`` of
    viable leukocytes; ``cd4_pct``, ``cd8_pct`` and ``car_pct`` of CD3+ T cells.
    """

    model_config = ConfigDict(frozen=True)

    sample_id: str
    panel: str
    events_acquired: int = Field(ge=0)
    viable_pct: float = Field(ge=0, le=100)
    cd3_pct: float = Field(ge=0, le=100)
    cd4_pct: float = Field(ge=0, le=100)
    cd8_pct: float = Field(ge=0, le=100)
    car_pct: float = Field(ge=0, le=100)
    cd3_of: Literal["viable leukocytes"] = "viable leukocytes"
    car_of: Literal["CD3+ T cells"] = "CD3+ T cells"
    cd56_pct: float = Field(ge=0, le=100, description="CD3- CD56+ NK cells, of viable")
    cd16_pct: float | None = Field(
        None, ge=0, le=100, description="CD16+ of CD3- CD56+ NK cells; None: not in the panel"
    )
    flags: list[str] = Field(
        default_factory=list,
        description='what limits the result: "CD4/CD8 not reported: 40 CD3+ events (< 100)"',
    )
    gate_events: dict[str, int] = Field(
        default_factory=dict, description="events in each gate, by gate name"
    )
    operator: str
    acquired_at_process_time_s: float
    instrument_serial: str


class FlowCytometer(Instrument):
    interface_name = "FlowCytometer"

    @command
    @abstractmethod
    async def immunophenotype(
        self, sample: Sample, panel: str = "CAR-T release", *, operator: str = "system"
    ) -> Immunophenotype:
        """Stain and acquire ``sample`` (about 20 min); needs at least 1e5 cells."""
