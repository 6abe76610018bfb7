"""One row of the fidelity table: a quantity of every seed against its published range."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from cellauto.sim.fidelity.runner import SeedSummary

__all__ = ["Row", "RowResult"]


class RowResult(BaseModel):
    """A row over a population: min, median and max, and whether they are in range."""

    model_config = ConfigDict(frozen=True)

    row: str
    n: int = Field(description="seeds that had the quantity")
    min: float | None
    median: float | None
    max: float | None
    inside: bool
    """The median is in the median range and every seed in the all-seeds range."""


class Row(BaseModel):
    """A quantity of each seed (a check's last value or a batch value, by name) with the
    published range its median must lie in, the range every seed must stay in, and the
    source of both."""

    model_config = ConfigDict(frozen=True)

    name: str
    kind: Literal["check", "value"]
    key: str = Field(description="the check's or the batch value's name")
    unit: str = ""
    median_range: tuple[float, float]
    all_range: tuple[float, float]
    source: str

    def quantity(self, summary: SeedSummary) -> float | None:
        """The row's quantity in one seed; None if the seed did not get that far."""
        found = (summary.checks if self.kind == "check" else summary.values).get(self.key)
        return float(found) if isinstance(found, int | float) else None

    def evaluate(self, summaries: Sequence[SeedSummary]) -> RowResult:
        values = [v for v in (self.quantity(s) for s in summaries) if v is not None]
        if not values:
            return RowResult(row=self.name, n=0, min=None, median=None, max=None, inside=False)
        low, mid, high = min(values), statistics.median(values), max(values)
        inside = (
            self.median_range[0] <= mid <= self.median_range[1]
            and self.all_range[0] <= low
            and high <= self.all_range[1]
        )
        return RowResult(row=self.name, n=len(values), min=low, median=mid, max=high, inside=inside)
