"""Irradiated feeder cells: they stimulate expansion, never divide, and die within a week.

A container's :class:`~cellauto.sim.material.FeederCells` compartment (design §3.4):
feeders die first order with a half-life of 60 h (less than 15 % left at day 7;
irradiated PBMC at 40-50 Gy, K562 at 100 Gy), consume glucose at the maintenance rate
and move with volume. Seeded with the cells they feed, they are a stimulus of
strength S = R / (R + K), R the feeder : target ratio at seeding:

* allogeneic PBMC + anti-CD3 (OKT3) for T cells and TIL, K = 20 (rapid expansion
  protocol: 100-200 : 1, IL-2 3000-6000 IU/mL, 14 days, about 1000-2000-fold;
  Dudley ME et al. 2003 *J Immunother*; Jin J et al. 2012 *J Immunother*);
* K562-mbIL21-41BBL for NK cells, K = 0.5 (2 : 1; 10^3-10^4-fold in 14-21 days;
  Denman CJ et al. 2012 *PLoS One*; Fujisaki H et al. 2009 *Cancer Res*); their
  membrane IL-21 carries the NK cells at 70 % of full cytokine support at least.

A tumour digest carries its own antigen: its T cells (TIL) grow under IL-2 with a
stimulus of 0.6 (*assumed*) after the patient's lag (about 5 days).
Sources: ``docs/simulation-sources.md``, "Patients and culture".
"""

from __future__ import annotations

import math
from typing import Literal

from cellauto.sim.material import Container, FeederCells

__all__ = [
    "FEEDER_HALF_LIFE_H",
    "TUMOUR_ANTIGEN_STIMULUS",
    "feeder_container",
    "feeder_death",
    "feeder_stimulus",
    "feeder_target",
]

FEEDER_HALF_LIFE_H = 60.0
TUMOUR_ANTIGEN_STIMULUS = 0.6
NK_FEEDER_MIN_SUPPORT = 0.7
_HALF_STIMULUS_RATIO = {"pbmc": 20.0, "k562": 0.5}
_CD3_SHARE = {"pbmc": 0.6, "k562": 0.0}


def feeder_target(feeders: FeederCells) -> Literal["T", "NK"]:
    """The cells ``feeders`` stimulate: T cells (PBMC + OKT3) or NK cells (K562)."""
    return "NK" if feeders.kind == "k562" else "T"


def feeder_stimulus(feeders: FeederCells, target_cells: float) -> float:
    """S = R / (R + K) for ``feeders`` added to ``target_cells`` viable target cells."""
    if feeders.viable <= 0:
        return 0.0
    if target_cells <= 0:
        return 1.0
    ratio = feeders.viable / target_cells
    return ratio / (ratio + _HALF_STIMULUS_RATIO[feeders.kind])


def feeder_death(feeders: FeederCells, dt_h: float) -> float:
    """Let ``feeders`` die for ``dt_h`` hours; returns how many died."""
    dying = feeders.viable * (1.0 - math.exp(-math.log(2) * dt_h / FEEDER_HALF_LIFE_H))
    feeders.viable -= dying
    feeders.dead += dying
    return dying


def feeder_container(
    container_id: str,
    kind: Literal["pbmc", "k562"],
    viable_cells: float,
    volume_ml: float,
    *,
    viability_pct: float = 95.0,
) -> Container:
    """A bag of irradiated feeders (no dividing cells), e.g. to pour into the cells."""
    dead = viable_cells * (100.0 - viability_pct) / viability_pct
    return Container(
        container_id=container_id,
        volume_ml=volume_ml,
        t_cell_fraction=0.0,
        nk_fraction=0.0,
        feeders=FeederCells(kind=kind, viable=viable_cells, dead=dead, cd3_share=_CD3_SHARE[kind]),
    )
