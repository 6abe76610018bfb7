"""Simulated image-based cell counter: ~90 s a sample, ~5 % RSD on concentrations.

Its linear range (issue 14, design §3.6; docs/simulation-sources.md, "Faults and
instrument limits"): 5e4-1e7 cells/mL counted (Vi-CELL BLU specification), i.e. of the
sample as diluted. The counting noise is sqrt(0.05² + 1/N) with N = the diluted
concentration x 0.0005 mL imaged (*assumed*, about the four large squares of a
haemocytometer, 0.4 µL; calibrated, issue 14: 0.0002 mL made an in-range count 7-9 %
RSD and a recovery from two counts read up to 117 %): Poisson at low counts. Above the range
coincidence hides cells: the excess over 1e7/mL is seen as e/(1 + e/5e8) (*assumed*),
on by default (``coincidence_cells_per_ml=None`` turns it off): the shipped protocols
dilute dense samples (CAR-T/NK 1.3.0 call :func:`cellauto.protocols.measures.count_in_range`).
Every count says where it lay (``range_flag``); a dilution brings a dense sample in.

Viability is counted too (issue 14 calibration): of the N cells imaged, the dead ones
(trypan-blue stained) are a binomial draw with the culture's dead share (one normal
draw of the counter's stream, as before, inverted through the binomial distribution:
the other models' draws do not move). Near 100 % the reading is binomial-like: a culture with
dead cells reads 100.0 % only when none of its few imaged cells was dead (Poisson: with
2 % dead and 1,000 cells imaged, e^-20), never from clipping a normal noise at 100
(Louis KS, Siegel AC 2011 *Methods Mol Biol* 740:7-12, trypan blue exclusion; Vi-CELL
BLU counts the cells it images).
"""

from __future__ import annotations

import math
import statistics

import anyio

from cellauto.instruments.cell_counter import CellCount, CellCounter, RangeFlag
from cellauto.instruments.materials import Sample
from cellauto.sim.base import SimInstrument, sim_identity
from cellauto.sim.world import SimWorld

__all__ = ["SimCellCounter"]


class SimCellCounter(SimInstrument, CellCounter):
    """Counts trypan-blue-stained cells; precision as PROCESS.md gives it."""

    DRIFT_FIELDS = frozenset({"viability_pct", "total_cells_per_ml"})

    #: The linear range of the counted (diluted) concentration, cells/mL.
    LINEAR_RANGE_CELLS_PER_ML = (5e4, 1e7)
    #: The volume imaged per count (mL): the Poisson part of the noise (*assumed*).
    IMAGED_ML = 0.0005
    #: The coincidence figure of the model (*assumed*), for ``coincidence_cells_per_ml``.
    COINCIDENCE_CELLS_PER_ML = 5e8

    def __init__(
        self,
        world: SimWorld,
        serial: str = "CC-0001",
        *,
        count_rsd: float = 0.05,
        seconds_per_sample: float = 90.0,
        coincidence_cells_per_ml: float | None = COINCIDENCE_CELLS_PER_ML,
    ) -> None:
        """``coincidence_cells_per_ml``: above the range the excess e is seen as
        e / (1 + e / this) (the model's figure: COINCIDENCE_CELLS_PER_ML); None: off."""
        super().__init__(world, sim_identity("SimCount BLU", serial))
        self.count_rsd = count_rsd
        self.seconds_per_sample = seconds_per_sample
        self.coincidence_cells_per_ml = coincidence_cells_per_ml

    async def count(
        self, sample: Sample, *, operator: str = "system", dilution: float = 1.0
    ) -> CellCount:
        self.guard("count", command=True)
        content = self.world.sample(sample, where=self.where)
        await anyio.sleep(self.seconds_per_sample)
        counted, range_flag = self._counted(content.total_cells_per_ml / dilution)
        total = self.measured("total_cells_per_ml", counted * dilution)
        viability = self._viability(content.viability_pct, counted * self.IMAGED_ML)
        viability = min(100.0, max(0.0, self.measured("viability_pct", viability)))
        return CellCount(
            sample_id=sample.sample_id,
            total_cells_per_ml=total,
            viable_cells_per_ml=total * viability / 100.0,
            viability_pct=viability,
            mean_diameter_um=float(self.rng.normal(9.5, 0.3)),
            dilution=dilution,
            range_flag=range_flag,
            operator=operator,
            counted_at_process_time_s=self.world.clock.now_s(),
            instrument_serial=self.identity.serial,
        )

    def _viability(self, true_pct: float, imaged_cells: float) -> float:
        """The viability counted among ``imaged_cells``: the dead ones a binomial draw
        (by inverting its distribution at one normal draw of the counter's stream)."""
        dead_share = min(max(1.0 - true_pct / 100.0, 0.0), 1.0)
        imaged = max(1, round(imaged_cells))
        u = 0.5 * (1.0 + math.erf(float(self.rng.normal(0.0, 1.0)) / math.sqrt(2.0)))
        dead = _binomial_quantile(u, imaged, dead_share)
        return 100.0 * (1.0 - dead / imaged)

    def _counted(self, diluted_per_ml: float) -> tuple[float, RangeFlag]:
        """The concentration counted in the diluted sample, and where it lay."""
        low, high = self.LINEAR_RANGE_CELLS_PER_ML
        seen = diluted_per_ml
        coincidence = self.coincidence_cells_per_ml
        if coincidence is not None and seen > high:  # cells overlap in the image
            excess = seen - high
            seen = high + excess / (1.0 + excess / coincidence)
        imaged = seen * self.IMAGED_ML
        rsd = math.sqrt(self.count_rsd**2 + (1.0 / imaged if imaged > 0 else 0.0))
        counted = max(0.0, seen * float(self.rng.normal(1.0, rsd)))
        flag: RangeFlag = (
            "below_range" if counted < low else "above_range" if counted > high else "in_range"
        )
        return counted, flag


def _binomial_quantile(u: float, n: int, p: float) -> int:
    """The smallest k with P(Binomial(n, p) <= k) >= u (normal with continuity
    correction when n·p·(1-p) > 25, where it is exact enough and the sum would be long)."""
    if p <= 0.0 or p >= 1.0:
        return 0 if p <= 0.0 else n
    if p > 0.5:  # count the other kind: no underflow of (1-p)^n
        return n - _binomial_quantile(1.0 - u, n, 1.0 - p)
    variance = n * p * (1.0 - p)
    if variance > 25.0:
        z = statistics.NormalDist().inv_cdf(min(max(u, 1e-12), 1.0 - 1e-12))
        return min(n, max(0, math.floor(n * p + z * math.sqrt(variance) + 0.5)))
    pmf = (1.0 - p) ** n
    cdf, k = pmf, 0
    while cdf < u and k < n:
        pmf *= (n - k) / (k + 1) * p / (1.0 - p)
        k += 1
        cdf += pmf
    return k
