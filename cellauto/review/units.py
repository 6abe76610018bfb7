"""The unit of an instrument's quantity, read from its field name.

Instruments here name their fields with the unit as a suffix (``temperature_c``,
``viable_cells_per_ml``, ``glucose_mmol_per_l``): :data:`SUFFIX_UNITS` maps each suffix
to the unit written in exports, longest suffix first. A rate ``<x>_<u>_per_<v>`` gets
the compound unit ``u/v`` (``perfusion_ml_per_h`` mL/h, ``warming_rate_c_per_h`` °C/h,
``death_rate_per_h`` 1/h), never the unit of its last suffix alone. A few fields carry
no suffix because their unit is their name (``ph``) or they are dimensionless:
:data:`NAMED_UNITS`. Fields that are numbers but not quantities (a time stamp, an index,
a job number) are in :data:`NOT_QUANTITIES` or end with a :data:`TIMESTAMP_SUFFIXES`
suffix; the exports use them (a time stamp becomes the
measurement's time) or leave them out.

A field none of these tables knows is an :class:`UnknownUnitError` in
:func:`unit_of`: a new instrument field gets its unit here, not silently none.
``tests/review/test_measurements.py`` checks every field the simulated CAR-T and NK runs
produce.
"""

from __future__ import annotations

from functools import cache

from cellauto.errors import CellautoError

__all__ = [
    "NAMED_UNITS",
    "NOT_QUANTITIES",
    "SUFFIX_UNITS",
    "TIMESTAMP_SUFFIXES",
    "UnknownUnitError",
    "is_timestamp",
    "unit_of",
]


class UnknownUnitError(CellautoError, ValueError):
    """A numeric field whose name gives no known unit."""


SUFFIX_UNITS: dict[str, str] = {
    "_mmol": "mmol",
    "_eu": "EU",
    "_mg": "mg",
    "_day": "d",
    "_c_per_min": "°C/min",
    "_ml_per_day": "mL/d",
    "_cells_per_ml": "cells/mL",
    "_mmol_per_l": "mmol/L",
    "_g_per_l": "g/L",
    "_mg_per_l": "mg/L",
    "_eu_per_ml": "EU/mL",
    "_rpm": "rpm",
    "_deg": "°",
    "_pct": "%",
    "_ml": "mL",
    "_ul": "µL",
    "_l": "L",
    "_um": "µm",
    "_mm": "mm",
    "_min": "min",
    "_h": "h",
    "_s": "s",
    "_kg": "kg",
    "_g": "g",
    "_c": "°C",
    "_k": "K",
    "_bar": "bar",
    "_kpa": "kPa",
    "_cells": "cells",
}
"""Field-name suffix → unit (also the parts of a rate: see :func:`unit_of`)."""

NAMED_UNITS: dict[str, str] = {
    "ph": "pH",
    "dilution": "1",
    "events_acquired": "events",
    "power_interruptions": "count",
    "total_cells": "cells",
    "viable_cells": "cells",
    "symbols": "count",
    "cycles": "count",  # a liquid handler's aspirate/dispense cycles of a transfer
}
"""Whole field names → unit, for fields with no unit suffix ("1": dimensionless)."""

TIMESTAMP_SUFFIXES: tuple[str, ...] = ("process_time_s",)
"""A field ending so is a time stamp (process clock, seconds since the Unix epoch), not a
quantity: ``process_time_s``, ``counted_at_process_time_s``, ..."""

NOT_QUANTITIES: frozenset[str] = frozenset(
    {
        "job",  # a label printer's job number
        "segment_index",  # the freezer's profile segment
        "position",  # a storage position (rack, box, slot)
        "box",
        "slot",
    }
)
"""Numbers that identify rather than measure: never exported as measurements."""

_SUFFIXES = sorted(SUFFIX_UNITS, key=len, reverse=True)


def is_timestamp(field: str) -> bool:
    """Whether ``field`` is a time stamp rather than a quantity."""
    return field.endswith(TIMESTAMP_SUFFIXES)


def _suffix_unit(name: str) -> str | None:
    return next((SUFFIX_UNITS[s] for s in _SUFFIXES if name.endswith(s)), None)


def _rate_unit(field: str) -> str | None:
    """``..._<unit>_per_<unit>`` -> ``"<unit>/<unit>"``: ``perfusion_ml_per_h`` -> mL/h,
    ``warming_rate_c_per_h`` -> °C/h, ``death_rate_per_h`` -> 1/h (no unit before
    ``_per_``); None when the part after ``_per_`` is no unit."""
    head, per, tail = field.rpartition("_per_")
    denominator = SUFFIX_UNITS.get(f"_{tail}")
    if not per or not head or denominator is None:
        return None
    return f"{_suffix_unit(head) or '1'}/{denominator}"


@cache
def unit_of(field: str) -> str:
    """The unit of the quantity ``field`` names, or :class:`UnknownUnitError`."""
    if field in NAMED_UNITS:
        return NAMED_UNITS[field]
    rate = _rate_unit(field)
    if rate is not None:
        return rate
    for suffix in _SUFFIXES:
        if field.endswith(suffix):
            return SUFFIX_UNITS[suffix]
    raise UnknownUnitError(
        f"no unit is known for the field {field!r}: name it with a unit suffix "
        f"({', '.join(_SUFFIXES[:6])}, ...) or add it to NAMED_UNITS or NOT_QUANTITIES in "
        "cellauto/review/units.py"
    )
