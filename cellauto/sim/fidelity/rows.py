"""One row of the fidelity table: a quantity of every seed against its published range,
or the share of seeds that failed a set of checks against the published share."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cellauto.sim.fidelity.runner import SeedSummary

__all__ = ["Row", "RowResult"]

Kind = Literal["check", "value", "derived", "patient", "failed"]


class RowResult(BaseModel):
    """A row over a population: min, median and max (or the share, in %), and whether
    they are in range."""

    model_config = ConfigDict(frozen=True)

    row: str
    n: int = Field(description="seeds that had the quantity")
    min: float | None
    median: float | None = Field(description="the median; for a share row, the share in %")
    max: float | None
    inside: bool
    """The median is in the median range and every seed in the all-seeds range."""


class Row(BaseModel):
    """A quantity of each seed with the published range its median must lie in, the
    range every seed must stay in, and the source of both.

    ``kind`` says where the quantity is: a check's last value, a batch value, a derived
    quantity (:mod:`cellauto.sim.fidelity.derived`) or a field of the patient, each named
    by ``key``. A ``failed`` row counts the seeds that failed any of the checks named in
    ``key`` (separated by ``|``) and compares that share, in %, with ``median_range``.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    kind: Kind
    key: str = Field(description="the check's, value's or field's name (failed: names | names)")
    unit: str = ""
    scale: float = Field(default=1.0, description="the quantity is multiplied by this")
    median_range: tuple[float, float]
    all_range: tuple[float, float] | None = None
    source: str

    @model_validator(mode="after")
    def _ranges(self) -> Row:
        for bounds in (self.median_range, self.all_range):
            if bounds is not None and bounds[0] > bounds[1]:
                raise ValueError(f"row {self.name!r}: range {bounds} is upside down")
        if self.kind == "failed" and self.all_range is not None:
            raise ValueError(f"row {self.name!r}: a share row has no all-seeds range")
        return self

    @property
    def is_share(self) -> bool:
        return self.kind == "failed"

    def quantity(self, summary: SeedSummary) -> float | None:
        """The row's quantity in one seed; None if the seed did not get that far."""
        if self.kind == "failed":
            failed = set(summary.failed_checks)
            return 1.0 if any(name.strip() in failed for name in self.key.split("|")) else 0.0
        source: dict[str, object] = {
            "check": dict(summary.checks),
            "value": dict(summary.values),
            "derived": dict(summary.derived),
            "patient": dict(summary.patient or {}),
        }[self.kind]
        found = source.get(self.key)
        if isinstance(found, bool) or not isinstance(found, int | float):
            return None
        return float(found) * self.scale

    def evaluate(self, summaries: Sequence[SeedSummary]) -> RowResult:
        values = [v for v in (self.quantity(s) for s in summaries) if v is not None]
        if not values:
            return RowResult(row=self.name, n=0, min=None, median=None, max=None, inside=False)
        if self.is_share:
            share = 100.0 * sum(values) / len(values)
            low_share, high_share = self.median_range
            inside = low_share <= share <= high_share
            return RowResult(
                row=self.name, n=len(values), min=None, median=share, max=None, inside=inside
            )
        low, mid, high = min(values), statistics.median(values), max(values)
        inside = self.median_range[0] <= mid <= self.median_range[1] and (
            self.all_range is None or (self.all_range[0] <= low and high <= self.all_range[1])
        )
        return RowResult(row=self.name, n=len(values), min=low, median=mid, max=high, inside=inside)
