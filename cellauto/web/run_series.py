"""The run page's plotted data, as JSON: the batch record's own
:func:`~cellauto.review.report.series.build_series` (one definition of what is plotted,
on screen and on paper), each group of points cut so that a live page asks only for
what it does not have yet.

Groups share a time list: ``counts_t`` (viable cells/mL, viability), ``culture_t``
(glucose, lactate, pH, DO, temperature), ``setpoints_t``, ``freeze_t`` (chamber,
sample), ``storage_t``. The freezer profile, the phase change, the specifications
drawn and the markers (deviations, alarms, held intervals, gaps) always come whole:
they are few, and a held interval's end moves.

Two cuts: ``after_s``, the points later than a process time; and ``since_seq``, the
points the records after that one added. The page's script asks by record: records
share process times (in virtual time a setpoint is set at the very time its step
starts), so a cut by time loses a point recorded after the last record read at that
same time; each group's points only ever grow at their end as records are added, so a
cut by record is exact.
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


def series_json(
    records: Sequence[Record], after_s: float | None = None, *, since_seq: int | None = None
) -> dict[str, Any]:
    """The run's series (JSON-ready); with ``after_s``, each group only from its points
    later than ``after_s``; with ``since_seq``, only the points the records after record
    ``since_seq`` added. ``until_s`` and ``last_seq`` name the last record read (the
    next request's ``after`` or ``since``)."""
    full = build_series(records).model_dump(mode="json")
    if after_s is not None:
        for time_key, columns in GROUPS.items():
            keep = [i for i, t in enumerate(full[time_key]) if t > after_s]
            for key in (time_key, *columns):
                full[key] = [full[key][i] for i in keep]
    if since_seq is not None:
        before = build_series([r for r in records if r.seq <= since_seq])
        for time_key, columns in GROUPS.items():
            had = len(getattr(before, time_key))
            for key in (time_key, *columns):
                full[key] = full[key][had:]
    full["groups"] = GROUPS
    full["until_s"] = records[-1].process_time_s if records else None
    full["last_seq"] = records[-1].seq if records else None
    return full
