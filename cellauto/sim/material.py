"""Simulated material: containers holding cells (with phenotype) and medium.

A :class:`Container` is a bag, tube or vessel. Its cells are counted (viable and
dead) with the phenotype shares a flow cytometer reports: the CD3+ share of viable
cells, the CD4+ share of T cells (the rest CD8+), the CAR+ share of T cells, the
monocyte share of viable cells, the CD16+ and CD8+ shares of NK cells. Irradiated
feeder cells (:class:`FeederCells`) are a compartment of their own: they never divide.
A frozen container carries what its freeze did to it (:class:`FrozenState`). Moving
liquid moves a proportional share of everything in it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

__all__ = ["Container", "FeederCells", "FrozenState"]


@dataclass
class FeederCells:
    """Irradiated feeder cells in a container: they stimulate, never divide, and die."""

    kind: Literal["pbmc", "k562"]
    """Allogeneic PBMC (with anti-CD3, for T cells and TIL) or engineered K562 (NK)."""
    viable: float = 0.0
    dead: float = 0.0
    cd3_share: float = 0.0
    """CD3+ share of the viable feeders (PBMC ~0.6, K562 0): a cytometer sees them."""

    def split(self, share: float) -> FeederCells:
        """Remove ``share`` of the feeders into a new compartment."""
        part = replace(self, viable=self.viable * share, dead=self.dead * share)
        self.viable -= part.viable
        self.dead -= part.dead
        return part

    def merge(self, other: FeederCells) -> None:
        total = self.viable + other.viable
        if total > 0:
            self.cd3_share = (self.cd3_share * self.viable + other.cd3_share * other.viable) / total
        self.viable, self.dead = total, self.dead + other.dead


@dataclass(frozen=True)
class FrozenState:
    """What a controlled-rate freeze did to a container, read when it is thawed."""

    frozen_at_h: float
    """Process hours (world time) when the freezer run ended."""
    cooling_rate_c_per_min: float | None
    """Through the phase change; None: no phase change was detected."""
    latent_heat_rise_c: float = 0.0
    dmso_exposure_h: float = 0.0
    """Hours between DMSO addition and the start of the freeze."""
    profile_name: str = ""
    rewarming_c: float = 0.0  # after the phase change (an outage); read by sim/thaw.py
    thawed: bool = False


@dataclass
class Container:
    """Cells and medium in one container (counts of cells, volumes in mL)."""

    container_id: str
    viable_cells: float = 0.0
    dead_cells: float = 0.0
    volume_ml: float = 0.0
    label: str = ""
    barcodes: tuple[str, ...] = ()
    """Every barcode's data on the container as it arrived (DIN, product code, COI)."""
    t_cell_fraction: float = 0.6
    cd4_fraction: float = 0.6
    car_fraction: float = 0.0
    nk_fraction: float = 0.1
    monocyte_fraction: float = 0.0
    """Monocytes, of viable cells."""
    nk_cd16_fraction: float = 0.85
    """CD16+ share of NK cells."""
    nk_cd8_fraction: float = 0.35
    """CD8alpha+ share of NK cells."""
    nk_cd56_negative_fraction: float = 0.0
    """CD56- (CD16+) share of NK cells: outside a CD56+CD3- gate."""
    feeders: FeederCells | None = None
    antigen_stimulus: float = 0.0
    """TCR stimulus the material carries itself (a tumour digest's antigen: 0.6)."""
    frozen: FrozenState | None = None
    dmso_pct: float = 0.0
    vector_copies_per_cell: float = 0.0
    contaminated: bool = False
    contamination_death_rate_per_h: float = 0.0
    """The death rate a growing contamination adds; it follows the cells (harvest, re-seed)."""
    history: list[str] = field(default_factory=list)

    @property
    def viable_cells_per_ml(self) -> float:
        return self.viable_cells / self.volume_ml if self.volume_ml > 0 else 0.0

    @property
    def total_cells_per_ml(self) -> float:
        total = self.viable_cells + self.dead_cells
        return total / self.volume_ml if self.volume_ml > 0 else 0.0

    @property
    def viability_pct(self) -> float:
        total = self.viable_cells + self.dead_cells
        return 100.0 * self.viable_cells / total if total > 0 else 0.0

    def take(self, volume_ml: float, new_id: str) -> Container:
        """Remove ``volume_ml`` (well mixed) into a new container named ``new_id``."""
        volume_ml = min(volume_ml, self.volume_ml)
        share = volume_ml / self.volume_ml if self.volume_ml > 0 else 0.0
        part = replace(
            self,
            container_id=new_id,
            viable_cells=self.viable_cells * share,
            dead_cells=self.dead_cells * share,
            volume_ml=volume_ml,
            label="",
            barcodes=(),
            history=[*self.history, f"from {self.container_id}"],
            feeders=self.feeders.split(share) if self.feeders is not None else None,
        )
        self.viable_cells -= part.viable_cells
        self.dead_cells -= part.dead_cells
        self.volume_ml -= volume_ml
        return part

    def add(self, other: Container) -> None:
        """Pour ``other`` in; phenotype shares mix weighted by cells."""
        total_viable = self.viable_cells + other.viable_cells

        def mix(mine: float, theirs: float, w_mine: float, w_theirs: float) -> float:
            weight = w_mine + w_theirs
            return (mine * w_mine + theirs * w_theirs) / weight if weight > 0 else mine

        t_mine = self.viable_cells * self.t_cell_fraction
        t_theirs = other.viable_cells * other.t_cell_fraction
        self.cd4_fraction = mix(self.cd4_fraction, other.cd4_fraction, t_mine, t_theirs)
        self.car_fraction = mix(self.car_fraction, other.car_fraction, t_mine, t_theirs)
        self.vector_copies_per_cell = mix(
            self.vector_copies_per_cell, other.vector_copies_per_cell, t_mine, t_theirs
        )
        self.t_cell_fraction = mix(
            self.t_cell_fraction, other.t_cell_fraction, self.viable_cells, other.viable_cells
        )
        nk_mine = self.viable_cells * self.nk_fraction
        nk_theirs = other.viable_cells * other.nk_fraction
        self.nk_cd16_fraction = mix(
            self.nk_cd16_fraction, other.nk_cd16_fraction, nk_mine, nk_theirs
        )
        self.nk_cd8_fraction = mix(self.nk_cd8_fraction, other.nk_cd8_fraction, nk_mine, nk_theirs)
        self.nk_cd56_negative_fraction = mix(
            self.nk_cd56_negative_fraction, other.nk_cd56_negative_fraction, nk_mine, nk_theirs
        )
        self.nk_fraction = mix(
            self.nk_fraction, other.nk_fraction, self.viable_cells, other.viable_cells
        )
        self.monocyte_fraction = mix(
            self.monocyte_fraction, other.monocyte_fraction, self.viable_cells, other.viable_cells
        )
        if other.feeders is not None:
            if self.feeders is None:
                self.feeders = other.feeders.split(0.0)
            self.feeders.merge(other.feeders.split(1.0))
        self.antigen_stimulus = max(self.antigen_stimulus, other.antigen_stimulus)
        self.frozen = self.frozen or other.frozen
        self.dmso_pct = mix(self.dmso_pct, other.dmso_pct, self.volume_ml, other.volume_ml)
        self.viable_cells = total_viable
        self.dead_cells += other.dead_cells
        self.volume_ml += other.volume_ml
        self.contaminated = self.contaminated or other.contaminated
        self.contamination_death_rate_per_h = max(
            self.contamination_death_rate_per_h, other.contamination_death_rate_per_h
        )
        other.viable_cells = other.dead_cells = other.volume_ml = 0.0

    def kill(self, fraction: float) -> None:
        """Move ``fraction`` of the viable cells to dead."""
        dying = self.viable_cells * min(max(fraction, 0.0), 1.0)
        self.viable_cells -= dying
        self.dead_cells += dying
