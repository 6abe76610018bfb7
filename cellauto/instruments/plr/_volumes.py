"""Volumes before PyLabRobot sees them: refused unless > 0, split into tip-sized cycles."""

from __future__ import annotations

import math
from numbers import Real

from cellauto.errors import OutOfRangeError

__all__ = ["TOLERANCE_UL", "require_volume", "split_volume"]

TOLERANCE_UL = 1e-6  # PyLabRobot's own tolerance on tracker volumes


def split_volume(volume_ul: float, capacity_ul: float) -> list[float]:
    """Full tips then the rest: 2500 µL with 1000 µL tips -> [1000, 1000, 500]."""
    full, rest = divmod(volume_ul, capacity_ul)
    parts = [capacity_ul] * int(full)
    if not parts:
        return [volume_ul]
    if rest > TOLERANCE_UL:
        parts.append(rest)
    else:
        parts[-1] += rest  # a rounding crumb rides with the last full tip
    return parts


def require_volume(where: str, field: str, value: float) -> float:
    """``value`` as a float, refused unless a finite number above 0 µL."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise OutOfRangeError(
            f"{where}: {field} {value!r} is not a finite number of µL; "
            "give a volume above the limit 0 µL"
        )
    if value <= 0:
        raise OutOfRangeError(
            f"{where}: {field} {value:g} µL is not above the limit 0 µL; a volume must be > 0 µL"
        )
    return float(value)
