"""The simulated world: containers of cells, samples, labels, one random generator.

Simulated instruments act on this shared material state, so a sample a bioreactor
draws is the sample a counter counts. One seeded numpy generator drives all noise:
the same seed gives the same run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cellauto.clock import Clock
from cellauto.errors import InstrumentError


@dataclass
class Container:
    """A bag, tube or vessel with cells in it (counts of cells, volume in mL)."""

    container_id: str
    viable_cells: float
    dead_cells: float
    volume_ml: float
    label: str = ""

    @property
    def viable_cells_per_ml(self) -> float:
        return self.viable_cells / self.volume_ml if self.volume_ml > 0 else 0.0

    @property
    def total_cells_per_ml(self) -> float:
        return (self.viable_cells + self.dead_cells) / self.volume_ml if self.volume_ml else 0.0


class SimWorld:
    """Material state and randomness shared by the simulated instruments of one line."""

    def __init__(self, clock: Clock, *, seed: int | None = None) -> None:
        self.clock = clock
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.containers: dict[str, Container] = {}
        self._sample_counter = 0

    def now_h(self) -> float:
        return self.clock.monotonic() / 3600.0

    def add_container(self, container: Container) -> Container:
        self.containers[container.container_id] = container
        return container

    def container(self, container_id: str, *, where: str) -> Container:
        try:
            return self.containers[container_id]
        except KeyError:
            known = ", ".join(self.containers) or "none"
            raise InstrumentError(
                f"{where}: no container {container_id!r} on the line; known: {known}"
            ) from None

    def next_sample_id(self, prefix: str) -> str:
        self._sample_counter += 1
        return f"{prefix}-S{self._sample_counter:04d}"
