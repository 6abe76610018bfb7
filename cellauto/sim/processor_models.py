"""The cell processor's programs and what each does to the cells (issue 14 split
:mod:`cellauto.sim.processor` in two: this module is the models, that one the instrument).

Figures: PROCESS.md (enrichment recovery 55 ± 6 %, purity CD4/CD8 98 ± 4 %, CD3 89 ±
10 %; wash/concentrate up to 4e9 cells, recovery ~88 %). Above the wash capacity
(design §3.6, docs/simulation-sources.md "Faults and instrument limits"): a
counterflow-centrifuge or spinning-membrane washer (Sepax C-Pro, LOVO) cannot count
its input, so it does not refuse it; past its rated load the excess is recovered
poorly (30 %, *assumed*) and the membrane/pressure alarm shows; past 1.5 x the load
the program fails and the input is returned.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from cellauto.instruments.cell_processor import ProgramParameter, ProgramTemplate
from cellauto.instruments.limits import LimitFlag
from cellauto.sim.material import Container

__all__ = [
    "PHASES",
    "PROGRAM_TEMPLATES",
    "WASH_CAPACITY_CELLS",
    "WASH_EXCESS_RECOVERY",
    "WASH_FAIL_FACTOR",
    "Processed",
    "process",
]

WASH_CAPACITY_CELLS = 4e9
#: The share of the cells above capacity a wash still recovers (*assumed*, design §3.6).
WASH_EXCESS_RECOVERY = 0.30
#: Above this many times the capacity the wash fails and the input is returned.
WASH_FAIL_FACTOR = 1.5


def _p(
    name: str, unit: str, default: float | None, low: float, high: float | None, text: str = ""
) -> ProgramParameter:
    return ProgramParameter(
        name=name, unit=unit, default=default, low=low, high=high, description=text
    )


_VOLUME = _p("output_volume_ml", "mL", 100.0, 20.0, 300.0)
_WASH = [
    _p("final_volume_ml", "mL", 20.0, 10.0, 200.0),
    _p("input_volume_ml", "mL", None, 1.0, None, text="default: all of the source"),
]
_FILL = [
    _p("product_volume_ml", "mL", None, 0.1, None, text="default: all of the source"),
    _p("final_volume_ml", "mL", None, 10.0, 500.0, text="default: least reaching dmso_pct"),
    _p("dmso_pct", "%", 7.5, 5.0, 10.0),
    _p("bag_count", "", 1.0, 1.0, 4.0),
]
_ENRICH_TEXT = "Magnetic enrichment of {} T cells; non-target and most dead cells go to waste."
_CATALOG = {  # template id: name, typical hours, parameters, description
    "CD4CD8_ENRICHMENT": ("CD4/CD8 enrichment", 4.5, [_VOLUME], _ENRICH_TEXT.format("CD4+/CD8+")),
    "CD3_ENRICHMENT": ("CD3 enrichment", 4.0, [_VOLUME], _ENRICH_TEXT.format("CD3+")),
    "WASH_CONCENTRATE": ("Wash and concentrate", 1.5, _WASH, "Up to 4e9 cells, into ~20 mL."),
    "FORMULATE_FILL": ("Formulate and fill", 0.75, _FILL, "Cryoprotectant to DMSO %; 1-4 bags."),
}
PROGRAM_TEMPLATES: dict[str, ProgramTemplate] = {
    tid: ProgramTemplate.model_validate(
        {"template_id": tid, "name": n, "typical_duration_h": h, "parameters": p, "description": d}
    )
    for tid, (n, h, p, d) in _CATALOG.items()
}
PHASES = {  # each phase an equal share of the duration
    "CD4CD8_ENRICHMENT": ("priming", "cell preparation", "labelling", "separation", "elution"),
    "CD3_ENRICHMENT": ("priming", "cell preparation", "labelling", "separation", "elution"),
    "WASH_CONCENTRATE": ("priming", "washing", "concentration"),
    "FORMULATE_FILL": ("priming", "mixing", "filling"),
}
_PURITY = {  # mean, sd, low, high of the target-cell share of the output
    "CD4CD8_ENRICHMENT": (0.98, 0.04, 0.85, 0.995),
    "CD3_ENRICHMENT": (0.89, 0.10, 0.6, 0.995),
}


def _normal(rng: np.random.Generator, mean: float, sd: float, low: float, high: float) -> float:
    return float(np.clip(rng.normal(mean, sd), low, high))


def _enrich(
    m: Container, volume_ml: float, purity: tuple[float, ...], rng: np.random.Generator
) -> Container:
    """T-cell recovery 55 ± 6 % at the purity drawn; 5 % of the dead cells stay."""
    t_in = m.viable_cells * m.t_cell_fraction
    t_out = t_in * _normal(rng, 0.55, 0.06, 0.30, 0.75)
    share = _normal(rng, *purity)
    non_t = min(t_out * (1.0 / share - 1.0), 0.5 * (m.viable_cells - t_in))
    viable = t_out + non_t
    nk_of_non_t = min(1.0, m.nk_fraction / (1.0 - m.t_cell_fraction)) if non_t > 0 else 0.0
    return replace(
        m,
        viable_cells=viable,
        dead_cells=0.05 * m.dead_cells,
        volume_ml=volume_ml,
        t_cell_fraction=t_out / viable if viable > 0 else share,
        nk_fraction=nk_of_non_t * non_t / viable if viable > 0 else 0.0,
    )


@dataclass
class Processed:
    """What a program does to what it took: the output, the limits met, a failure."""

    out: Container
    limit_flags: list[LimitFlag] = field(default_factory=list)
    failure: str | None = None
    """Why the program fails at its end (the input is then returned); None: it completes."""


def _wash(m: Container, params: dict[str, float], rng: np.random.Generator) -> Processed:
    """~88 % of the viable, half the dead cells recovered, up to the capacity; the
    excess above it at WASH_EXCESS_RECOVERY (and flagged); above WASH_FAIL_FACTOR x
    the capacity the program fails."""
    recovery = _normal(rng, 0.88, 0.02, 0.80, 0.95)
    cells = m.viable_cells + m.dead_cells
    flags: list[LimitFlag] = []
    failure = None
    if cells > WASH_CAPACITY_CELLS:
        within = WASH_CAPACITY_CELLS / cells
        recovery = within * recovery + (1.0 - within) * WASH_EXCESS_RECOVERY
        over = cells > WASH_FAIL_FACTOR * WASH_CAPACITY_CELLS
        flags.append(
            LimitFlag(
                quantity="input cells",
                value=cells,
                limit=WASH_CAPACITY_CELLS,
                unit="cells",
                message=(
                    f"membrane pressure high: input above {WASH_FAIL_FACTOR:g} x capacity, "
                    "program failed, input returned"
                    if over
                    else "membrane pressure high: input above capacity, recovery reduced"
                ),
            )
        )
        if over:
            failure = (
                f"membrane pressure alarm: {cells:.3g} cells is above {WASH_FAIL_FACTOR:g} x "
                f"the capacity of {WASH_CAPACITY_CELLS:.3g}"
            )
    out = replace(
        m,
        viable_cells=recovery * m.viable_cells,
        dead_cells=0.5 * m.dead_cells,
        volume_ml=params["final_volume_ml"],
    )
    return Processed(out, flags, failure)


def process(
    tid: str, m: Container, params: dict[str, float], rng: np.random.Generator
) -> Processed:
    """Draw the outcome of program ``tid`` on the material ``m`` it took."""
    if tid in _PURITY:
        done = Processed(_enrich(m, params["output_volume_ml"], _PURITY[tid], rng))
    elif tid == "WASH_CONCENTRATE":
        done = _wash(m, params, rng)
    else:  # FORMULATE_FILL: a hold-up of 1-2 % of the mix stays in the tubing set
        keep = 1.0 - _normal(rng, 0.015, 0.003, 0.01, 0.02)
        done = Processed(
            replace(
                m,
                viable_cells=keep * m.viable_cells,
                dead_cells=keep * m.dead_cells,
                volume_ml=keep * params["final_volume_ml"],
                dmso_pct=params["dmso_pct"],
            )
        )
    # Cells that died in processing are carried into the output as dead cells; they
    # come from the input cells that were not recovered, so cells are conserved:
    # viable recovery stays the published figure, viability drops by drop_pct points.
    out = done.out
    drop_pct, viability = _normal(rng, 2.0, 0.5, 1.0, 3.0), out.viability_pct
    if out.viable_cells > 0 and viability > drop_pct:
        out.dead_cells = out.viable_cells * 100.0 / (viability - drop_pct) - out.viable_cells
    return done
