"""Helpers for protocols that measure honestly (issue 14, design §3.6 and §5).

A count is only as good as the counter's linear range; a recovery from two counts
carries both counts' noise; a wash must be sized from a noisy count so that the true
input stays under the washer's capacity. The shipped protocols call these (from CAR-T
and NK 1.3.0); each says what it assumed. Sources: docs/simulation-sources.md,
"Faults and instrument limits".
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cellauto.instruments.cell_counter import CellCount, CellCounter
from cellauto.instruments.materials import Sample

__all__ = [
    "ABOVE_100_WITHIN_UNCERTAINTY",
    "IMPLAUSIBLE_RECOVERY",
    "OUT_OF_LINEAR_RANGE",
    "Recovery",
    "WashPlan",
    "count_flags",
    "count_in_range",
    "dilution_for",
    "recovery",
    "wash_plan",
]

#: The flag a check carries when its count lay outside the counter's linear range.
OUT_OF_LINEAR_RANGE = "count outside the counter's linear range"
ABOVE_100_WITHIN_UNCERTAINTY = "above 100 % within counting uncertainty"
IMPLAUSIBLE_RECOVERY = "implausible: above 100 % beyond counting uncertainty"

#: Dilutions a lab makes (1-2-5 series).
_DILUTIONS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


def dilution_for(total_cells_per_ml: float, *, target_per_ml: float = 2e6) -> float:
    """The least 1-2-5 dilution bringing ``total_cells_per_ml`` to ``target_per_ml`` or
    below (the middle of a Vi-CELL-type 5e4-1e7/mL linear range: room for the
    first count's coincidence loss)."""
    for dilution in _DILUTIONS:
        if total_cells_per_ml / dilution <= target_per_ml:
            return float(dilution)
    return float(_DILUTIONS[-1])


async def count_in_range(
    counter: CellCounter,
    draw: Callable[[], Awaitable[Sample]],
    *,
    operator: str = "system",
    dilution: float = 1.0,
    target_per_ml: float = 2e6,
) -> CellCount:
    """Count a sample from ``draw()``; when the counter says it lay above its linear
    range, draw another and count it diluted (:func:`dilution_for` of the first
    count, at least 2x more than before) once. The count returned may still be out
    of range (a sample far below it): its ``range_flag`` says so, and
    :func:`count_flags` turns that into a check's flag."""
    count = await counter.count(await draw(), operator=operator, dilution=dilution)
    if count.range_flag != "above_range":
        return count
    more = max(dilution_for(count.total_cells_per_ml, target_per_ml=target_per_ml), 2 * dilution)
    return await counter.count(await draw(), operator=operator, dilution=more)


def count_flags(*counts: CellCount) -> list[str]:
    """The flags a check computed from ``counts`` carries (none when all in range)."""
    return [OUT_OF_LINEAR_RANGE] if any(c.range_flag != "in_range" for c in counts) else []


@dataclass(frozen=True)
class Recovery:
    """A recovery measured from two counts: its value, its standard uncertainty, a flag."""

    pct: float
    u_pct: float
    flag: str | None

    @property
    def flags(self) -> list[str]:
        """For ``run.check(..., flags=)``: the value is recorded unchanged (ALCOA)."""
        return [self.flag] if self.flag else []


def recovery(before_cells: float, after_cells: float, *, rsd: float = 0.05) -> Recovery:
    """``after / before`` in %, each count at ``rsd`` (5 %: the counter's precision),
    so the ratio at about sqrt(2) x rsd (7 %). Above 100 % is flagged: within two
    standard uncertainties as counting noise, beyond that as implausible."""
    if before_cells <= 0:
        raise ValueError(f"recovery needs cells before, not {before_cells:g}")
    pct = 100.0 * after_cells / before_cells
    u_pct = pct * math.sqrt(2.0) * rsd
    flag = None
    if pct > 100.0 + 2.0 * u_pct:
        flag = IMPLAUSIBLE_RECOVERY
    elif pct > 100.0:
        flag = ABOVE_100_WITHIN_UNCERTAINTY
    return Recovery(pct, u_pct, flag)


@dataclass(frozen=True)
class WashPlan:
    """How much of a bag to wash, in how many runs, so each stays under capacity."""

    input_volume_ml: float
    """Per wash run."""
    runs: int
    counted_cells: float
    """Total cells in the bag, as counted."""


def wash_plan(
    total_cells_per_ml: float,
    volume_ml: float,
    *,
    capacity_cells: float = 4e9,
    rsd: float = 0.05,
    coverage: float = 3.0,
) -> WashPlan:
    """Split the bag into the fewest equal wash runs whose input stays under
    ``capacity_cells`` even if the count read ``coverage`` x ``rsd`` low (3 x 5 %:
    a true total 15 % above the count still fits). Total cells: viable and dead, as
    the washer sees them."""
    if total_cells_per_ml < 0 or volume_ml <= 0:
        raise ValueError(f"wash_plan needs a count >= 0 and a volume > 0 mL, not {volume_ml:g}")
    counted = total_cells_per_ml * volume_ml
    safe = capacity_cells / (1.0 + coverage * rsd)
    runs = max(1, math.ceil(counted / safe))
    return WashPlan(input_volume_ml=volume_ml / runs, runs=runs, counted_cells=counted)
