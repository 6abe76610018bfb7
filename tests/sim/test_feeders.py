"""Irradiated feeders and tumour digests (issue 14, design §3.4)."""

from __future__ import annotations

from typing import Literal

import pytest

from cellauto.sim.culture import Culture
from cellauto.sim.feeders import feeder_container, feeder_death, feeder_stimulus
from cellauto.sim.material import Container, FeederCells
from cellauto.sim.starting_material import material_container
from cellauto.sim.vessels import GREX_100M


def _culture(
    kind: Literal["T", "NK"] = "T",
    *,
    ratio: float = 100.0,
    il2_iu_per_ml: float = 6000.0,
    feeders: bool = True,
    days: int = 14,
) -> Culture:
    """5e6 cells (with feeders at ``ratio``:1) in a G-Rex 100M, IL-2 in the medium."""
    cells = Container(
        "cells",
        viable_cells=5e6,
        dead_cells=5e5,
        volume_ml=50.0,
        t_cell_fraction=0.95 if kind == "T" else 0.02,
        nk_fraction=0.95 if kind == "NK" else 0.02,
    )
    if feeders:
        cells.add(feeder_container("f", "pbmc" if kind == "T" else "k562", 5e6 * ratio, 50.0))
    cells.volume_ml = 500.0
    culture = Culture(cells, 0.0, GREX_100M.culture_model())
    if il2_iu_per_ml:
        culture.cytokines.add({"IL-2": il2_iu_per_ml}, 1.0, 1.0, to_medium_supply=True)
    for day in range(1, days + 1):
        culture.advance_to(24.0 * day)
        if day in (5, 7, 9, 11) and cells.volume_ml < 900:
            culture.add_medium(100.0 if day < 7 else 200.0, 24.0 * day)
    return culture


def test_feeders_never_divide_and_die_within_a_week() -> None:
    feeders = FeederCells(kind="pbmc", viable=1e9, cd3_share=0.6)
    for _ in range(7 * 24):
        feeder_death(feeders, 1.0)
    assert feeders.viable / 1e9 < 0.15 and feeders.viable + feeders.dead == pytest.approx(1e9)
    culture = _culture()
    assert culture.cells.feeders is not None
    assert culture.cells.feeders.viable < 0.03 * 5e8  # day 14: they never grew


def test_pbmc_feeders_drive_a_rapid_expansion_with_il2() -> None:
    rep = _culture()
    culture_fold = rep.cells.viable_cells / 5e6
    assert culture_fold > 200  # REP: hundreds- to thousands-fold in 14 days
    without_il2 = _culture(il2_iu_per_ml=0.0).cells.viable_cells / 5e6
    without_feeders = _culture(feeders=False).cells.viable_cells / 5e6
    assert without_il2 < culture_fold / 10 and without_feeders < 2.0


def test_k562_feeders_stimulate_nk_cells() -> None:
    fed = _culture("NK", ratio=2.0, il2_iu_per_ml=100.0).cells.viable_cells / 5e6
    alone = _culture("NK", feeders=False, il2_iu_per_ml=100.0).cells.viable_cells / 5e6
    assert fed > 10 and alone < 1.0


def test_stimulus_grows_with_the_feeder_ratio_and_feeders_move_with_volume() -> None:
    few, many = FeederCells("pbmc", viable=1e8), FeederCells("pbmc", viable=2e9)
    assert feeder_stimulus(few, 1e7) == pytest.approx(10 / 30)
    assert feeder_stimulus(many, 1e7) == pytest.approx(200 / 220)
    bag = feeder_container("f", "k562", 1e8, 100.0)
    half = bag.take(50.0, "half")
    assert half.feeders is not None and half.feeders.viable == pytest.approx(5e7)
    assert half.viable_cells == 0.0  # feeders are not the product's cells


def test_a_tumour_digest_s_til_grow_under_il2_after_a_long_lag() -> None:
    digest = material_container("d", "tumour_digest")
    assert digest.antigen_stimulus == pytest.approx(0.6)
    digest.volume_ml = 100.0
    culture = Culture(digest, 0.0, GREX_100M.culture_model().model_copy(update={"lag_h": 120}))
    culture.cytokines.add({"IL-2": 6000.0}, 1.0, 1.0, to_medium_supply=True)
    t_before = digest.viable_cells * digest.t_cell_fraction
    culture.advance_to(96.0)
    assert digest.viable_cells * digest.t_cell_fraction < t_before  # still in the lag
    culture.advance_to(14 * 24.0)
    assert digest.viable_cells * digest.t_cell_fraction > 10 * t_before
    assert digest.t_cell_fraction > 0.9  # tumour cells died, TIL grew
