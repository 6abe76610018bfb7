"""A dry shipper's logger readings against the storage limit: extremes and excursions.

Frozen product is stored below -150 °C (vapour-phase LN2, PROCESS.md); an excursion is
a run of consecutive readings above the limit, from its first to its last reading.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from cellauto.records.material_payloads import Excursion, LoggerReading

__all__ = ["DEFAULT_LIMIT_C", "LoggerCheck", "check_logger", "excursion_text", "find_excursions"]

#: Frozen product is stored below -150 °C (vapour-phase LN2, PROCESS.md).
DEFAULT_LIMIT_C = -150.0


class LoggerCheck(BaseModel):
    """The logger's readings over a shipment or a carry, against the limit."""

    model_config = ConfigDict(frozen=True)

    readings: int
    min_c: float | None
    max_c: float | None
    limit_c: float
    excursions: list[Excursion]

    @property
    def passed(self) -> bool:
        return not self.excursions


def find_excursions(readings: Sequence[LoggerReading], limit_c: float) -> list[Excursion]:
    """Each run of consecutive readings above ``limit_c``: its first and last reading's
    time (the logger saw it above the limit from ``start`` to ``end``) and its maximum."""
    found: list[Excursion] = []
    first: LoggerReading | None = None
    last: LoggerReading | None = None
    peak = -math.inf
    for reading in readings:
        if reading.temperature_c > limit_c:
            first = first or reading
            last, peak = reading, max(peak, reading.temperature_c)
        elif first is not None and last is not None:
            found.append(Excursion(start=first.time, end=last.time, max_c=peak))
            first, last, peak = None, None, -math.inf
    if first is not None and last is not None:
        found.append(Excursion(start=first.time, end=last.time, max_c=peak))
    return found


def check_logger(readings: Sequence[LoggerReading], limit_c: float) -> LoggerCheck:
    """Minimum, maximum and excursions of ``readings`` against ``limit_c``."""
    temperatures = [r.temperature_c for r in readings]
    return LoggerCheck(
        readings=len(readings),
        min_c=min(temperatures, default=None),
        max_c=max(temperatures, default=None),
        limit_c=limit_c,
        excursions=find_excursions(readings, limit_c),
    )


def excursion_text(where: str, serial: str, check: LoggerCheck) -> str:
    """What a deviation says of the excursions of ``check`` (``where``: the shipment or carry)."""
    spans = "; ".join(
        f"{e.start:%Y-%m-%d %H:%M} to {e.end:%Y-%m-%d %H:%M} UTC (max {e.max_c:.1f} °C)"
        for e in check.excursions
    )
    return (
        f"{where}: logger {serial} read above the limit {check.limit_c:g} °C in "
        f"{len(check.excursions)} excursion(s): {spans}; keep the product under quarantine "
        "until QA has assessed it"
    )
