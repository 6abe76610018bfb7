"""A T-cell culture: logistic growth after an activation lag, with death when overgrown.

dX/dt = mu * X * (1 - X / X_max) once the lag is over, mu = ln 2 / doubling time;
viable cells die at a first-order rate that rises when the culture exceeds its
carrying capacity. Figures default to PROCESS.md (lag 1-2 days, doubling ~36 h,
up to ~1e7 cells/mL in a rocking bag) and are parameters.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, Field


class CultureModel(BaseModel):
    """Kinetic parameters of a culture (all rates per hour)."""

    lag_h: float = Field(24.0, ge=0)
    doubling_time_h: float = Field(36.0, gt=0)
    max_viable_cells_per_ml: float = Field(1e7, gt=0)
    death_rate_per_h: float = Field(0.002, ge=0)
    overgrowth_death_rate_per_h: float = Field(0.02, ge=0)


class Culture:
    """Cells in a volume of medium, advanced lazily to the time it is looked at."""

    def __init__(
        self,
        viable_cells: float,
        dead_cells: float,
        volume_ml: float,
        start_h: float,
        model: CultureModel | None = None,
    ) -> None:
        self.model = model or CultureModel()
        self.viable_cells = viable_cells
        self.dead_cells = dead_cells
        self.volume_ml = volume_ml
        self._seeded_h = start_h
        self._now_h = start_h

    @property
    def viable_cells_per_ml(self) -> float:
        return self.viable_cells / self.volume_ml if self.volume_ml > 0 else 0.0

    @property
    def viability_pct(self) -> float:
        total = self.viable_cells + self.dead_cells
        return 100.0 * self.viable_cells / total if total > 0 else 0.0

    def advance_to(self, now_h: float) -> None:
        """Integrate from the last time looked at to ``now_h`` (exact logistic solution)."""
        if now_h <= self._now_h:
            return
        m = self.model
        growth_from = max(self._now_h, self._seeded_h + m.lag_h)
        if now_h > growth_from and self.volume_ml > 0 and self.viable_cells > 0:
            dt = now_h - growth_from
            mu = math.log(2) / m.doubling_time_h
            k = m.max_viable_cells_per_ml
            x0 = self.viable_cells_per_ml
            x = k / (1 + (k / x0 - 1) * math.exp(-mu * dt))
            self.viable_cells = x * self.volume_ml
        dt_total = now_h - self._now_h
        death = m.death_rate_per_h
        if self.viable_cells_per_ml > 0.9 * m.max_viable_cells_per_ml:
            death += m.overgrowth_death_rate_per_h
        dying = self.viable_cells * (1 - math.exp(-death * dt_total))
        self.viable_cells -= dying
        self.dead_cells += dying
        self._now_h = now_h

    def add_medium(self, volume_ml: float) -> None:
        self.volume_ml += volume_ml

    def remove(self, volume_ml: float) -> tuple[float, float]:
        """Take ``volume_ml`` out; returns (viable, dead) cells removed."""
        fraction = min(1.0, volume_ml / self.volume_ml) if self.volume_ml > 0 else 0.0
        viable, dead = self.viable_cells * fraction, self.dead_cells * fraction
        self.viable_cells -= viable
        self.dead_cells -= dead
        self.volume_ml -= volume_ml * (fraction if fraction < 1 else 1)
        return viable, dead
