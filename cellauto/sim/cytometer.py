"""Simulated flow cytometer: a CAR-T release panel on ~50,000 events in ~20 min.

Every percentage is counted, not guessed: viable events are a binomial draw from the
acquired events, CD3+ and CD56+ from the viable ones, CD4+/CD8+/double-negative a
multinomial draw from the CD3+ ones and CAR+ a binomial draw from them too. On top
of that counting noise sits a small per-instrument bias (percentage points, drawn
once from the instrument's own seeded stream) and any injected sensor drift.
"""

from __future__ import annotations

import logging

import anyio

from cellauto.errors import InstrumentError
from cellauto.instruments.base import require_range
from cellauto.instruments.flow_cytometer import FlowCytometer, Immunophenotype
from cellauto.instruments.materials import Sample
from cellauto.sim.base import SimInstrument, sim_identity
from cellauto.sim.world import SimWorld

__all__ = ["MIN_SAMPLE_CELLS", "SimFlowCytometer"]

logger = logging.getLogger(__name__)

MIN_SAMPLE_CELLS = 1e5
_FIELDS = ("viable_pct", "cd3_pct", "cd4_pct", "cd8_pct", "car_pct", "cd56_pct")


#: Staining panels the simulated cytometer has validated (each reports every marker).
PANELS = ("CAR-T release", "CAR in-process", "T-cell purity", "NK phenotype")


class SimFlowCytometer(SimInstrument, FlowCytometer):
    """Stains and acquires a sample; acquires half its cells, at most ``target_events``."""

    DRIFT_FIELDS = frozenset(_FIELDS)

    def __init__(
        self,
        world: SimWorld,
        serial: str = "FC-0001",
        *,
        target_events: int = 50_000,
        double_negative_fraction: float = 0.02,
        bias_sd_pct: float = 0.5,
        seconds_per_sample: float = 1200.0,
        panels: tuple[str, ...] = PANELS,
    ) -> None:
        super().__init__(world, sim_identity("SimFlow 6C", serial))
        self.target_events = target_events
        self.double_negative_fraction = double_negative_fraction
        self.seconds_per_sample = seconds_per_sample
        self.panels = panels
        self.bias_pct = {f: float(self.rng.normal(0.0, bias_sd_pct)) for f in _FIELDS}

    async def immunophenotype(
        self, sample: Sample, panel: str = "CAR-T release", *, operator: str = "system"
    ) -> Immunophenotype:
        self.guard("immunophenotype", command=True)
        content = self.world.sample(sample, where=self.where)
        if panel not in self.panels:
            raise InstrumentError(
                f"{self.where}: unknown panel {panel!r}; known: {', '.join(self.panels)}"
            )
        cells = content.viable_cells + content.dead_cells
        require_range(self, "cells in sample", cells, low=MIN_SAMPLE_CELLS, unit="cells")
        await anyio.sleep(self.seconds_per_sample)
        rng = self.rng
        events = int(min(self.target_events, 0.5 * cells))
        viable = int(rng.binomial(events, content.viability_pct / 100.0))
        t_share = content.t_cell_fraction
        # CD56- NK cells fall outside the CD56+ gate, with the other CD3- CD56- cells
        nk_share = min(content.nk_fraction, 1.0 - t_share) * (1 - content.nk_cd56_negative_fraction)
        cd3, nk, _ = rng.multinomial(viable, [t_share, nk_share, max(0.0, 1 - t_share - nk_share)])
        dn = self.double_negative_fraction
        cd4, cd8, _ = rng.multinomial(
            cd3, [content.cd4_fraction * (1 - dn), (1 - content.cd4_fraction) * (1 - dn), dn]
        )
        car = int(rng.binomial(cd3, content.car_fraction))
        counts = {
            "viable_pct": (viable, events),
            "cd3_pct": (int(cd3), viable),
            "cd4_pct": (int(cd4), cd3),
            "cd8_pct": (int(cd8), cd3),
            "car_pct": (car, cd3),
            "cd56_pct": (int(nk), viable),
        }
        pct = {
            name: min(100.0, max(0.0, self._reported(name, part, whole)))
            for name, (part, whole) in counts.items()
        }
        logger.info("%s: %s acquired %d events", self.where, sample.sample_id, events)
        return Immunophenotype(
            sample_id=sample.sample_id,
            panel=panel,
            events_acquired=events,
            operator=operator,
            acquired_at_process_time_s=self.world.clock.now_s(),
            instrument_serial=self.identity.serial,
            **pct,
        )

    def _reported(self, name: str, part: int, whole: int) -> float:
        value = 100.0 * part / whole if whole > 0 else 0.0
        return self.measured(name, value + self.bias_pct[name])
