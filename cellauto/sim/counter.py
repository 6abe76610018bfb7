"""Simulated image-based cell counter: ~90 s a sample, ~5 % RSD on concentrations."""

from __future__ import annotations

import anyio

from cellauto.instruments.cell_counter import CellCount, CellCounter
from cellauto.instruments.materials import Sample
from cellauto.sim.base import SimInstrument, sim_identity
from cellauto.sim.world import SimWorld

__all__ = ["SimCellCounter"]


class SimCellCounter(SimInstrument, CellCounter):
    """Counts trypan-blue-stained cells; precision as PROCESS.md gives it."""

    DRIFT_FIELDS = frozenset({"viability_pct", "total_cells_per_ml"})

    def __init__(
        self,
        world: SimWorld,
        serial: str = "CC-0001",
        *,
        count_rsd: float = 0.05,
        viability_sd_pct: float = 1.0,
        seconds_per_sample: float = 90.0,
    ) -> None:
        super().__init__(world, sim_identity("SimCount BLU", serial))
        self.count_rsd = count_rsd
        self.viability_sd_pct = viability_sd_pct
        self.seconds_per_sample = seconds_per_sample

    async def count(
        self, sample: Sample, *, operator: str = "system", dilution: float = 1.0
    ) -> CellCount:
        self.guard("count", command=True)
        content = self.world.sample(sample, where=self.where)
        await anyio.sleep(self.seconds_per_sample)
        noise = max(0.0, float(self.rng.normal(1.0, self.count_rsd)))
        total = self.measured("total_cells_per_ml", content.total_cells_per_ml * noise)
        viability = content.viability_pct + float(self.rng.normal(0.0, self.viability_sd_pct))
        viability = min(100.0, max(0.0, self.measured("viability_pct", viability)))
        return CellCount(
            sample_id=sample.sample_id,
            total_cells_per_ml=total,
            viable_cells_per_ml=total * viability / 100.0,
            viability_pct=viability,
            mean_diameter_um=float(self.rng.normal(9.5, 0.3)),
            dilution=dilution,
            operator=operator,
            counted_at_process_time_s=self.world.clock.now_s(),
            instrument_serial=self.identity.serial,
        )
