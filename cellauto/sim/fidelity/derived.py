"""Quantities of a simulated run that no check or batch value carries, read from its
records for the fidelity table: the starting material's total nucleated cells, the
culture's peak lactate and the pH then, and the freeze's latent-heat rise."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cellauto.records import payloads as rec
from cellauto.sim.simulate import SimulatedRun

__all__ = [
    "LACTATE_PEAK",
    "LATENT_HEAT_RISE",
    "PH_AT_LACTATE_PEAK",
    "STARTING_TOTAL_CELLS",
    "derive",
]

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
    if run.patient is not None:
        material = run.patient.starting_material
        derived[STARTING_TOTAL_CELLS] = material.viable_cells * 100.0 / material.viability_pct
    peak: tuple[float, float | None] | None = None
    for reading in run.of_kind(rec.Reading):
        if reading.method in _PROCESS_VALUES and isinstance(reading.value, Mapping):
            lactate = _number(reading.value, "lactate_mmol_per_l")
            if lactate is not None and (peak is None or lactate > peak[0]):
                peak = (lactate, _number(reading.value, "ph"))
        elif reading.method == "result" and isinstance(reading.value, Mapping):
            rise = _number(reading.value, "max_latent_heat_rise_c")
            if rise is not None:
                derived[LATENT_HEAT_RISE] = max(rise, derived.get(LATENT_HEAT_RISE, rise))
    if peak is not None:
        derived[LACTATE_PEAK] = peak[0]
        if peak[1] is not None:
            derived[PH_AT_LACTATE_PEAK] = peak[1]
    return derived
