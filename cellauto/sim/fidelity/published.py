"""The published ranges the shipped protocols' simulated outcomes are held to (issue 14,
item 7): per row, the range the median of 100 seeds must lie in, the range every seed
must stay in, and the source. The sources are in docs/simulation-sources.md; ``(?)``
marks a reference not yet checked against the paper itself, *assumed* a range no
source gives."""

from __future__ import annotations

from pathlib import Path

from cellauto.sim.fidelity.derived import (
    ENRICHMENT_T_RECOVERY,
    LACTATE_PEAK,
    LATENT_HEAT_RISE,
    PH_AT_LACTATE_PEAK,
    STARTING_TOTAL_CELLS,
)
from cellauto.sim.fidelity.rows import Row

__all__ = ["CAR_T_ROWS", "NK_ROWS", "rows_for"]

_FREEZE_AND_STORAGE = (
    Row(
        name="cooling rate through phase change",
        kind="check",
        key="cooling rate through phase change",
        unit="°C/min",
        median_range=(-1.2, -0.8),
        all_range=(-2.0, -0.5),
        source="PROCESS.md; Hunt 2011",
    ),
    Row(
        name="latent-heat rise",
        kind="derived",
        key=LATENT_HEAT_RISE,
        unit="°C",
        median_range=(0.0, 2.0),
        all_range=(0.0, 4.0),
        source="assumed (compensated profile)",
    ),
    Row(
        name="storage temperature",
        kind="check",
        key="storage temperature",
        unit="°C",
        median_range=(-196.0, -150.0),
        all_range=(-200.0, -150.0),
        source="PROCESS.md (vapour phase ≤ -150 °C)",
    ),
)

CAR_T_ROWS: tuple[Row, ...] = (
    Row(
        name="apheresis total nucleated cells",
        kind="derived",
        key=STARTING_TOTAL_CELLS,
        unit="cells",
        median_range=(5e9, 1.5e10),
        all_range=(1e9, 6e10),
        source="Allen 2017; Tuazon 2019 (?)",
    ),
    Row(
        name="apheresis viability",
        kind="check",
        key="apheresis viability",
        unit="%",
        median_range=(93.0, 99.0),
        all_range=(75.0, 100.0),
        source="Panch 2019",
    ),
    Row(
        name="CD3+ after enrichment",
        kind="check",
        key="CD3+ after enrichment",
        unit="%",
        median_range=(90.0, 99.5),
        all_range=(60.0, 100.0),
        source="PROCESS.md (98 ± 4)",
    ),
    Row(
        name="enrichment T-cell recovery",
        kind="derived",
        key=ENRICHMENT_T_RECOVERY,
        unit="%",
        median_range=(45.0, 65.0),
        all_range=(25.0, 80.0),
        source="PROCESS.md (55 ± 6 %)",
    ),
    Row(
        name="fold expansion at harvest",
        kind="value",
        key="fold expansion",
        unit="x",
        median_range=(20.0, 60.0),
        all_range=(3.0, 300.0),
        source="PROCESS.md (30-500 by platform)",
    ),
    Row(
        name="viability at harvest",
        kind="check",
        key="daily viability",
        unit="%",
        median_range=(85.0, 95.0),
        all_range=(50.0, 99.0),
        source="assumed from the ≥ 80 % release specification",
    ),
    Row(
        name="peak lactate",
        kind="derived",
        key=LACTATE_PEAK,
        unit="mM",
        median_range=(10.0, 25.0),
        all_range=(1.0, 35.0),
        source="Michl 2019 (?); every seed: assumed (a 5-fold expander makes ~2 mM)",
    ),
    Row(
        name="pH at peak lactate",
        kind="derived",
        key=PH_AT_LACTATE_PEAK,
        median_range=(6.9, 7.3),
        all_range=(6.6, 7.45),
        source="bicarbonate buffer (Michl 2019 (?))",
    ),
    Row(
        name="wash recovery (measured)",
        kind="check",
        key="wash recovery",
        unit="%",
        median_range=(80.0, 95.0),
        all_range=(55.0, 120.0),
        source="PROCESS.md (> 86-88 %); every seed: 100 % + 3 x 7 % (two counts at 5 % RSD)",
    ),
    Row(
        name="viability at release",
        kind="check",
        key="viability at release",
        unit="%",
        median_range=(85.0, 95.0),
        all_range=(55.0, 99.0),
        source="PROCESS.md (specification ≥ 80 %)",
    ),
    Row(
        name="CAR+ at release",
        kind="check",
        key="CAR+ at release",
        unit="% of CD3+",
        median_range=(25.0, 50.0),
        all_range=(5.0, 85.0),
        source="PROCESS.md (20-80 %, 37 % typical)",
    ),
    Row(
        name="dose",
        kind="check",
        key="dose",
        unit="% of target",
        median_range=(95.0, 105.0),
        all_range=(40.0, 120.0),
        source="±20 % label window",
    ),
    *_FREEZE_AND_STORAGE,
    Row(
        name="post-thaw viability",
        kind="check",
        key="post-thaw viability",
        unit="%",
        median_range=(70.0, 80.0),
        all_range=(50.0, 90.0),
        source="PROCESS.md (70-75 %, HPC); Hunt 2011; Panch 2019 (?)",
    ),
    Row(
        name="post-thaw viable recovery",
        kind="check",
        key="post-thaw viable recovery",
        unit="%",
        median_range=(70.0, 90.0),
        all_range=(40.0, 100.0),
        source="assumed",
    ),
    Row(
        name="batches out of specification",
        kind="failed",
        key="dose|viability at release|CD3+ at release|CAR+ at release|post-thaw viability"
        "|minimum harvest|daily viability",
        unit="% of seeds",
        median_range=(5.0, 15.0),
        source="issue 14; ELIANA ≈ 8 % not infused for product reasons (Maude 2018 (?))",
    ),
)

NK_ROWS: tuple[Row, ...] = (
    Row(
        name="NK cells (CD56+CD3-) at release",
        kind="check",
        key="NK cells (CD56+CD3-)",
        unit="%",
        median_range=(85.0, 98.0),
        all_range=(60.0, 100.0),
        source="Granzin 2017; Koepsell 2013 (?)",
    ),
    Row(
        name="residual T cells (CD3+)",
        kind="check",
        key="residual T cells (CD3+)",
        unit="%",
        median_range=(0.1, 2.0),
        all_range=(0.0, 10.0),
        source="Koepsell 2013 (?)",
    ),
    Row(
        name="viability at release",
        kind="check",
        key="viability at release",
        unit="%",
        median_range=(80.0, 95.0),
        all_range=(55.0, 99.0),
        source="Granzin 2017 (?)",
    ),
    Row(
        name="dose",
        kind="check",
        key="dose",
        unit="% of target",
        median_range=(95.0, 105.0),
        all_range=(40.0, 120.0),
        source="±20 % label window",
    ),
    *_FREEZE_AND_STORAGE,
    Row(
        name="post-thaw viability",
        kind="check",
        key="post-thaw viability",
        unit="%",
        median_range=(60.0, 80.0),
        all_range=(40.0, 90.0),
        source="Mark 2020; Domogala 2017 (?)",
    ),
    Row(
        name="batches out of specification",
        kind="failed",
        key="dose|viability at release|NK cells (CD56+CD3-)|residual T cells (CD3+)"
        "|post-thaw viability|minimum harvest|viability",
        unit="% of seeds",
        median_range=(0.0, 10.0),
        source="healthy donors, assumed (Klöss 2017: every run released (?))",
    ),
)

_BY_FILE = {"car_t_autologous.py": CAR_T_ROWS, "nk_expansion.py": NK_ROWS}


def rows_for(protocol: str | Path) -> tuple[Row, ...]:
    """The published rows of a shipped protocol, by its file name."""
    name = Path(protocol).name
    if name not in _BY_FILE:
        known = ", ".join(sorted(_BY_FILE))
        raise KeyError(f"no published ranges for {name}: the fidelity table knows {known}")
    return _BY_FILE[name]
