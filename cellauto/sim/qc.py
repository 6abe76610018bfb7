"""A simulated QC laboratory: release-test results for a simulated batch, as a LIMS
would export them, from the run's own records with deterministic noise.

``simulated_results(run.records, seed=1)`` gives one LIMS row (the columns of
:data:`SIM_LIMS_SCHEMA`) per test of the run's ``release_plan``:

- viability: the ``viability at release`` check, 2 % RSD; CAR+: ``CAR+ at release``, 5 %;
- vector copy number: lognormal around 2 copies, 0.5 more per MOI unit above 5;
- post-thaw viability: the run's own ``post-thaw viability`` batch value (its retained vial)
  with 2 % RSD (the second vial); without one, the release viability x the survival
  :func:`cellauto.sim.thaw.post_thaw` gives the curve the freezer reported (cooling rate
  and latent-heat rise) and the simulated patient's cryo-sensitivity (no factor of its own);
- endotoxin: U(0.05, 0.5) EU/mL; cell count: the ``dose`` batch value, 5 % RSD;
- sterility: "no growth", or "growth" when the run shows a contamination's signature (a
  viability falling more than 30 points within 24 h); mycoplasma: "not detected".

:class:`~cellauto.sim.faults.QcFault` changes one test's row: ``fail`` (out of
specification; ``value`` forces the LIMS value), ``missing`` (no row), ``wrong_din``
(another batch's DIN), ``unauthorised`` (status not authorised), ``borderline`` (a pass
within the test's borderline band). :func:`write_lims_export` writes the rows as CSV
(:data:`SIM_LIMS_SCHEMA`) or JSON (:data:`SIM_LIMS_JSON_SCHEMA`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import orjson

from cellauto.records import Record
from cellauto.records import payloads as rec
from cellauto.records.lims_schema import LimsColumns, LimsSchema
from cellauto.records.material_payloads import ContainerCreated
from cellauto.records.models import utc_from_epoch_s
from cellauto.records.release_plan import PercentOf, PerKg, Qualitative, ReleasePlan, ReleaseTest
from cellauto.records.spec import Spec
from cellauto.sim.faults import QcFault
from cellauto.sim.material import FrozenState
from cellauto.sim.thaw import post_thaw

__all__ = [
    "SIM_LIMS_JSON_SCHEMA",
    "SIM_LIMS_SCHEMA",
    "SIM_TEST_CODES",
    "simulated_results",
    "write_lims_export",
]

SIM_TEST_CODES = {
    "STER": "sterility",
    "LAL": "endotoxin",
    "MYCO": "mycoplasma",
    "VCN": "vector copy number",
    "CARP": "identity (CAR+)",
    "VIAB": "viability",
    "PTV": "post-thaw viability",
    "TNC": "cell count",
}
_CODE_OF = {name: code for code, name in SIM_TEST_CODES.items()}
_TEXT_CODES = {"no growth": "NG", "growth": "G", "not detected": "ND", "detected": "D"}
_UNIT_CODES = {
    "EU/mL": "EU/ML",
    "%": "PCT",
    "copies/transduced cell": "CPC",
    "CAR+ viable cells": "CARCELLS",
    "viable NK cells": "NKCELLS",
}
SIM_LIMS_SCHEMA = LimsSchema(
    format="csv",
    columns=LimsColumns(
        sample_id="SAMPLE_ID",
        coi="COI",
        din="DIN",
        test="ANALYSIS",
        value="RESULT",
        unit="UNITS",
        method="METHOD",
        analyst="ANALYST",
        tested_on="TESTED_ON",
        instrument="INSTRUMENT",
        status="STATUS",
    ),
    tests=SIM_TEST_CODES,
    text_values={code: text for text, code in _TEXT_CODES.items()},
    units={code: unit for unit, code in _UNIT_CODES.items()},
    date_format="%d/%m/%Y",
    accepted_status=("AUTHORISED",),
)
"""The simulated LIMS's CSV export (``cellauto qc schema define NAME --builtin sim``)."""
SIM_LIMS_JSON_SCHEMA = SIM_LIMS_SCHEMA.model_copy(update={"format": "json", "rows_path": "results"})
"""The same export as JSON, rows under ``results`` (``--builtin sim-json``)."""

OTHER_BATCH_DIN = "W123426999999"


def _release_plan(records: Sequence[Record]) -> ReleasePlan:
    for record in records:
        if isinstance(record.payload, ReleasePlan):
            return record.payload
    raise ValueError("the run has no release_plan record: nothing to test")


def _contaminated(records: Sequence[Record]) -> bool:
    """A viability falling by more than 30 points within 24 h (process time)."""
    seen: list[tuple[float, float]] = []
    for record in records:
        payload = record.payload
        if isinstance(payload, rec.CheckResult) and "viability" in payload.check:
            now = record.process_time_s
            if any(now - t <= 24 * 3600 and v - payload.value > 30 for t, v in seen):
                return True
            seen.append((now, payload.value))
    return False


def _check(records: Sequence[Record], name: str, default: float) -> float:
    named = [
        r.payload.value
        for r in records
        if isinstance(r.payload, rec.CheckResult) and r.payload.check == name
    ]
    return float(named[-1]) if named else default


def _frozen_state(records: Sequence[Record]) -> FrozenState:
    """The product's freeze as the freezer reported it (its last run's result)."""
    for record in reversed(records):
        payload = record.payload
        result: Any = None
        if isinstance(payload, rec.InstrumentResponse):
            result = payload.result
        elif isinstance(payload, rec.Reading):  # a query's answer
            result = payload.value
        if isinstance(result, dict) and "cooling_rate_through_phase_change_c_per_min" in result:
            rate = result["cooling_rate_through_phase_change_c_per_min"]
            return FrozenState(
                frozen_at_h=record.process_time_s / 3600.0,
                cooling_rate_c_per_min=float(rate) if rate is not None else None,
                latent_heat_rise_c=float(result.get("max_latent_heat_rise_c") or 0.0),
                profile_name=str(result.get("profile_name", "")),
            )
    return FrozenState(frozen_at_h=0.0, cooling_rate_c_per_min=None)


def _cryo_sensitivity(started: rec.RunStarted) -> float:
    simulation = started.simulation
    patient = simulation.patient if simulation is not None else None
    value = (patient or {}).get("cryo_sensitivity", 1.0)
    return float(value) if isinstance(value, int | float) else 1.0


class _Run:
    """What the simulated lab reads of a run."""

    def __init__(self, records: Sequence[Record]) -> None:
        started = records[0].payload
        if not isinstance(started, rec.RunStarted):
            raise ValueError("the records do not start with run_started")
        self.run_id = started.run_id
        self.params: dict[str, Any] = dict(started.parameters)
        self.plan = _release_plan(records)
        self.values = {
            r.payload.name: r.payload.value
            for r in records
            if isinstance(r.payload, rec.BatchValue)
        }
        self.containers = {
            r.payload.key: r.payload.identity.din + r.payload.identity.flag
            for r in records
            if isinstance(r.payload, ContainerCreated)
        }
        self.ended_on = utc_from_epoch_s(records[-1].wall_time_ns / 1e9).date()
        self.freeze_deviation = any(
            isinstance(r.payload, rec.Deviation) and (r.payload.step or "") == "freeze"
            for r in records
        )
        self.contaminated = _contaminated(records)
        self.frozen_state = _frozen_state(records)
        self.cryo_sensitivity = _cryo_sensitivity(started)
        self.records = records

    def factor(self, test: ReleaseTest) -> float:
        """Normalised = raw x factor."""
        if isinstance(test.normalise, PerKg):
            volume = float(self.values.get(test.normalise.volume_value, 0.0) or 0.0)
            weight = float(self.params.get(test.normalise.weight_param, 1.0) or 1.0)
            return volume / weight if volume else 1.0
        if isinstance(test.normalise, PercentOf):
            target = float(self.values.get(test.normalise.target_value, 0.0) or 0.0)
            return 100.0 / target if target else 1.0
        return 1.0


def _simulated_value(run: _Run, test: ReleaseTest, rng: np.random.Generator) -> float | str:
    release_viability = _check(run.records, "viability at release", 90.0)
    if test.name == "sterility":
        return "growth" if run.contaminated else "no growth"
    if test.name == "mycoplasma":
        return "not detected"
    if test.name == "endotoxin":
        return float(rng.uniform(0.05, 0.5))
    if test.name == "vector copy number":
        moi = float(run.params.get("moi", 5.0))
        return float(rng.lognormal(np.log(2.0), 0.3) + 0.5 * max(0.0, moi - 5.0))
    if test.name == "identity (CAR+)":
        return _check(run.records, "CAR+ at release", 40.0) * float(rng.normal(1.0, 0.05))
    if test.name == "viability":
        return min(100.0, release_viability * float(rng.normal(1.0, 0.02)))
    if test.name == "post-thaw viability":
        noise = float(rng.normal(1.0, 0.02))
        measured = run.values.get("post-thaw viability")
        if isinstance(measured, int | float):
            return min(100.0, float(measured) * noise)
        survival = post_thaw(run.frozen_state, cryo_sensitivity=run.cryo_sensitivity).survival
        return min(100.0, release_viability * survival * noise)
    if test.name == "cell count":
        return float(run.values.get("dose", 1.0e8)) * float(rng.normal(1.0, 0.05))
    if isinstance(test.spec, Qualitative):
        return test.spec.accept[0]
    spec = test.spec
    middle = ((spec.min or 0.0) + (spec.max if spec.max is not None else (spec.min or 0.0) * 2)) / 2
    return middle / run.factor(test)


def _forced(run: _Run, test: ReleaseTest, fault: QcFault) -> float | str:
    """The value of a ``fail`` or ``borderline`` fault, in the LIMS's (raw) unit."""
    if fault.value is not None:
        return fault.value
    spec = test.spec
    if isinstance(spec, Qualitative):
        if fault.effect == "borderline":
            raise ValueError(f"QcFault borderline: {test.name} is qualitative")
        return {"no growth": "growth", "not detected": "detected"}.get(spec.accept[0], "growth")
    assert isinstance(spec, Spec)
    share = test.borderline_pct / 100.0
    if fault.effect == "fail":
        normalised = spec.max * 1.8 if spec.max is not None else (spec.min or 0.0) * 0.8
    elif spec.min is not None and spec.max is not None:
        normalised = spec.min + share * (spec.max - spec.min) / 2
    elif spec.max is not None:
        normalised = spec.max * (1 - share / 2)
    else:
        normalised = (spec.min or 0.0) * (1 + share / 2)
    return normalised / run.factor(test)


def _shown(value: float | str) -> str:
    if isinstance(value, str):
        return _TEXT_CODES.get(value, value)
    return f"{value:.4g}" if abs(value) < 1e6 else f"{value:.6e}"


def simulated_results(
    records: Sequence[Record],
    *,
    seed: int = 0,
    faults: Sequence[QcFault] = (),
    today: date | None = None,
) -> list[dict[str, str]]:
    """One LIMS row per release test of the run (module doc), in the plan's order.

    ``today``: no result is dated after it (a test takes ``days_to_result`` days from the
    run's end)."""
    run = _Run(records)
    rng = np.random.default_rng(seed ^ int(run.run_id[:8], 16))
    by_test = {fault.test: fault for fault in faults}
    unknown = set(by_test) - {t.name for t in run.plan.tests}
    if unknown:
        raise ValueError(f"QcFault names no test of the run: {sorted(unknown)}")
    rows: list[dict[str, str]] = []
    for test in run.plan.tests:
        value = _simulated_value(run, test, rng)  # drawn for every test: stable noise
        fault = by_test.get(test.name)
        if fault is not None and fault.effect in ("fail", "borderline"):
            value = _forced(run, test, fault)
        if fault is not None and fault.effect == "missing":
            continue
        day = run.ended_on + timedelta(days=test.days_to_result or 0)
        if today is not None:
            day = min(day, today)
        din = run.containers.get(test.sample or "") or run.containers.get(
            f"{test.sample} 1", str(run.params.get("din", ""))
        )
        if fault is not None and fault.effect == "wrong_din":
            din = OTHER_BATCH_DIN + din[13:]
        code = _CODE_OF.get(test.name, test.name.upper())
        rows.append(
            {
                "SAMPLE_ID": f"QC{run.run_id[:6].upper()}-{code}",
                "COI": run.plan.coi or "",
                "DIN": din,
                "ANALYSIS": code,
                "RESULT": _shown(value),
                "UNITS": _UNIT_CODES.get(test.unit, test.unit),
                "METHOD": test.method,
                "ANALYST": "sim.analyst",
                "TESTED_ON": day.strftime("%d/%m/%Y"),
                "INSTRUMENT": f"SIM-LAB-{code}",
                "STATUS": "IN REVIEW"
                if fault is not None and fault.effect == "unauthorised"
                else "AUTHORISED",
            }
        )
    return rows


def write_lims_export(
    rows: Sequence[dict[str, str]], path: Path, *, format: Literal["csv", "json"] = "csv"
) -> Path:
    """Write ``rows`` as the simulated LIMS exports them (CSV, or JSON under ``results``)."""
    columns = list(SIM_LIMS_SCHEMA.columns.model_dump().values())
    if format == "json":
        path.write_bytes(orjson.dumps({"results": list(rows)}, option=orjson.OPT_INDENT_2))
        return path
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(out.getvalue(), encoding="utf-8")
    return path
