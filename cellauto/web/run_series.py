"""The run page's plotted data, as JSON: the batch record's own
:func:`~cellauto.review.report.series.build_series` (one definition of what is plotted,
on screen and on paper), each group of points cut to those after a process time so a
live page asks only for what it does not have yet.

Groups share a time list: ``counts_t`` (viable cells/mL, viability), ``culture_t``
(glucose, lactate, pH, DO, temperature), ``setpoints_t``, ``freeze_t`` (chamber,
sample), ``storage_t``. The freezer profile, the phase change, the specifications
drawn and the markers (deviations, alarms, held intervals, gaps) always come whole:
they are few, and a held interval's end moves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cellauto.records.models import Record
from cellauto.review.report.series import build_series

__all__ = ["GROUPS", "series_json"]

GROUPS: dict[str, tuple[str, ...]] = {
    "counts_t": ("viable_cells_per_ml", "viability_pct"),
    "culture_t": (
        "glucose_mmol_per_l",
        "lactate_mmol_per_l",
        "ph",
        "dissolved_oxygen_pct",
        "temperature_c",
    ),
    "setpoints_t": ("setpoint_ph", "setpoint_do_pct", "setpoint_temperature_c"),
    "freeze_t": ("chamber_c", "sample_c"),
    "storage_t": ("storage_c",),
}
"""Each time list and the value lists that go with it, point for point."""


def series_json(records: Sequence[Record], after_s: float | None = None) -> dict[str, Any]:
    """The run's series (JSON-ready); with ``after_s``, each group only from its first
    point later than ``after_s``. ``until_s`` is the process time of the last record
    read: the ``after`` of the next request."""
    full = build_series(records).model_dump(mode="json")
    if after_s is not None:
        for time_key, columns in GROUPS.items():
            keep = [i for i, t in enumerate(full[time_key]) if t > after_s]
            for key in (time_key, *columns):
                full[key] = [full[key][i] for i in keep]
    full["groups"] = GROUPS
    full["until_s"] = records[-1].process_time_s if records else None
    full["last_seq"] = records[-1].seq if records else None
    return full
