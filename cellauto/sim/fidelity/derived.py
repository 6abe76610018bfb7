"""Quantities of a simulated run that no check or batch value carries, read from its
records for the fidelity table: the starting material's total nucleated cells, the
enrichment's T-cell recovery (the enriched product's viable cells times its measured CD3+
share, over the starting material's T cells), the culture's peak lactate and the pH
then, and the freeze's latent-heat rise."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cellauto.records import payloads as rec
from cellauto.sim.simulate import SimulatedRun

__all__ = [
    "ENRICHMENT_T_RECOVERY",
    "LACTATE_PEAK",
    "LATENT_HEAT_RISE",
    "PH_AT_LACTATE_PEAK",
    "STARTING_TOTAL_CELLS",
    "derive",
]

ENRICHMENT_T_RECOVERY = "enrichment T-cell recovery"

STARTING_TOTAL_CELLS = "starting material total cells"
LACTATE_PEAK = "peak lactate"
PH_AT_LACTATE_PEAK = "pH at peak lactate"
LATENT_HEAT_RISE = "latent-heat rise"

_PROCESS_VALUES = ("process_values", "read_process_values")


def _number(values: Mapping[str, Any], key: str) -> float | None:
    found = values.get(key)
    return float(found) if isinstance(found, int | float) else None


def derive(run: SimulatedRun) -> dict[str, float]:
    """The derived quantities of ``run`` that it has (a run that never cultured has no
    lactate; one that never froze has no latent-heat rise)."""
    derived: dict[str, float] = {}
    t_cells_in: float | None = None
    if run.patient is not None:
        material = run.patient.starting_material
        derived[STARTING_TOTAL_CELLS] = material.viable_cells * 100.0 / material.viability_pct
        t_cells_in = material.viable_cells * material.t_cell_fraction
    peak: tuple[float, float | None] | None = None
    for reading in run.of_kind(rec.Reading):
        if reading.method in _PROCESS_VALUES and isinstance(reading.value, Mapping):
            lactate = _number(reading.value, "lactate_mmol_per_l")
            if lactate is not None and (peak is None or lactate > peak[0]):
                peak = (lactate, _number(reading.value, "ph"))
        elif reading.method == "program_result" and isinstance(reading.value, Mapping):
            if reading.value.get("template_id") == "CD4CD8_ENRICHMENT" and t_cells_in:
                enriched = _number(reading.value, "viable_cells")
                purity = [c.value for c in run.checks("CD3+ after enrichment")]
                if enriched is not None and purity:
                    t_cells_out = enriched * purity[-1] / 100.0
                    derived[ENRICHMENT_T_RECOVERY] = 100.0 * t_cells_out / t_cells_in
        elif reading.method == "result" and isinstance(reading.value, Mapping):
            rise = _number(reading.value, "max_latent_heat_rise_c")
            if rise is not None:
                derived[LATENT_HEAT_RISE] = max(rise, derived.get(LATENT_HEAT_RISE, rise))
    if peak is not None:
        derived[LACTATE_PEAK] = peak[0]
        if peak[1] is not None:
            derived[PH_AT_LACTATE_PEAK] = peak[1]
    return derived
