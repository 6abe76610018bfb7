"""The simulated QC laboratory: plausible, reproducible results from the run's own
records; a contamination shows as growth; each QcFault changes its test's row."""

from __future__ import annotations

from pathlib import Path

import pytest

from cellauto.records.lims_schema import LimsSchema
from cellauto.records.release_plan import ReleasePlan
from cellauto.review.lims_parse import parse_export
from cellauto.review.qc_eval import observe, verdict
from cellauto.sim import simulate
from cellauto.sim.faults import Contamination, QcFault
from cellauto.sim.material import FrozenState
from cellauto.sim.qc import SIM_LIMS_JSON_SCHEMA, SIM_LIMS_SCHEMA, simulated_results
from cellauto.sim.simulate import SimulatedRun
from cellauto.sim.thaw import post_thaw

ROOT = Path(__file__).resolve().parents[2]
CAR_T = ROOT / "protocols" / "car_t_autologous.py"


@pytest.fixture(scope="module")
def car_t() -> SimulatedRun:
    return simulate(CAR_T, seed=2, patient="typical")


def _judged(run: SimulatedRun, path: Path, schema: LimsSchema = SIM_LIMS_SCHEMA) -> dict[str, str]:
    (plan,) = run.of_kind(ReleasePlan)
    export = parse_export(path, schema, coi=plan.coi, plan=plan)
    verdicts = {}
    for row in export.rows:
        test = plan.test(row.test)
        assert test is not None and row.unit == test.unit
        observed = observe(test, row.value, row.text, run.values, run.params.model_dump())
        verdicts[row.test] = verdict(test, observed)
    return verdicts


def test_every_test_passes_over_seeds(car_t: SimulatedRun, tmp_path: Path) -> None:
    for seed in range(20):
        path = car_t.lims_export(tmp_path / f"r{seed}.csv", seed=seed)
        verdicts = _judged(car_t, path)
        assert len(verdicts) == 8
        assert set(verdicts.values()) == {"pass"}, (seed, verdicts)


def test_values_come_from_the_run(car_t: SimulatedRun) -> None:
    rows = {r["ANALYSIS"]: r for r in car_t.qc_results(seed=4)}
    viability = float(rows["VIAB"]["RESULT"])
    assert viability == pytest.approx(car_t.check("viability at release").value, rel=0.1)
    count = float(rows["TNC"]["RESULT"])
    assert count == pytest.approx(car_t.values["dose"], rel=0.2)
    assert rows["STER"]["RESULT"] == "NG" and rows["MYCO"]["RESULT"] == "ND"
    assert 0.05 <= float(rows["LAL"]["RESULT"]) <= 0.5
    assert car_t.qc_results(seed=4) == car_t.qc_results(seed=4)
    assert car_t.qc_results(seed=4) != car_t.qc_results(seed=5)


@pytest.mark.parametrize(
    ("fault", "check"),
    [
        (QcFault(test="endotoxin", effect="fail", value=9.0), lambda r: r["LAL"]["RESULT"] == "9"),
        (QcFault(test="sterility", effect="fail"), lambda r: r["STER"]["RESULT"] == "G"),
        (QcFault(test="post-thaw viability", effect="missing"), lambda r: "PTV" not in r),
        (
            QcFault(test="viability", effect="unauthorised"),
            lambda r: r["VIAB"]["STATUS"] != "AUTHORISED",
        ),
        (
            QcFault(test="viability", effect="wrong_din"),
            lambda r: r["VIAB"]["DIN"].startswith("W123426999999"),
        ),
    ],
)
def test_each_fault(car_t: SimulatedRun, fault: QcFault, check: object) -> None:
    rows = {r["ANALYSIS"]: r for r in car_t.qc_results(faults=[fault])}
    assert check(rows)  # type: ignore[operator]


def test_fail_and_borderline_faults_judge_so(car_t: SimulatedRun, tmp_path: Path) -> None:
    failing = car_t.lims_export(
        tmp_path / "f.json",
        faults=[
            QcFault(test="cell count", effect="fail"),
            QcFault(test="viability", effect="fail"),
        ],
        format="json",
    )
    verdicts = _judged(car_t, failing, SIM_LIMS_JSON_SCHEMA)
    assert (verdicts["cell count"], verdicts["viability"], verdicts["sterility"]) == (
        "fail",
        "fail",
        "pass",
    )
    edge = car_t.lims_export(
        tmp_path / "b.csv", faults=[QcFault(test="endotoxin", effect="borderline")]
    )
    assert _judged(car_t, edge)["endotoxin"] == "pass"
    with pytest.raises(ValueError, match="qualitative"):
        car_t.qc_results(faults=[QcFault(test="sterility", effect="borderline")])
    with pytest.raises(ValueError, match="no test"):
        car_t.qc_results(faults=[QcFault(test="potency", effect="fail")])


def test_contamination_grows() -> None:
    run = simulate(
        CAR_T,
        seed=2,
        faults={"bioreactor": [Contamination(at_h=100)]},
        on_hold="restart",
        patient="typical",
    )
    rows = {r["ANALYSIS"]: r for r in simulated_results(run.records, seed=1)}
    assert rows["STER"]["RESULT"] == "G"


def _with_freeze(run: SimulatedRun, **update: float) -> list:  # type: ignore[type-arg]
    """The run's records with the freezer's reported result changed by ``update`` (and
    without the run's own post-thaw count, so the LIMS derives it from the curve)."""
    out = []
    for record in run.records:
        payload = record.payload
        if getattr(payload, "name", None) == "post-thaw viability":
            continue
        value = getattr(payload, "value", None)
        if isinstance(value, dict) and "cooling_rate_through_phase_change_c_per_min" in value:
            payload = payload.model_copy(update={"value": {**value, **update}})
            record = record.model_copy(update={"payload": payload})
        out.append(record)
    return out


def _ptv(records: list) -> float:  # type: ignore[type-arg]
    rows = simulated_results(records, seed=3)
    return float(next(r["RESULT"] for r in rows if r["ANALYSIS"] == "PTV"))


def test_post_thaw_viability_follows_the_reported_freeze_curve(car_t: SimulatedRun) -> None:
    good = _ptv(_with_freeze(car_t, cooling_rate_through_phase_change_c_per_min=-1.0))
    release = car_t.check("viability at release").value
    expected = release * post_thaw(FrozenState(1.0, -1.0, 0.5)).survival
    assert good == pytest.approx(expected, rel=0.08) and 65.0 <= good <= 80.0
    slow = _ptv(_with_freeze(car_t, cooling_rate_through_phase_change_c_per_min=-0.3))
    risen = _ptv(_with_freeze(car_t, max_latent_heat_rise_c=6.0))
    assert slow < good - 10 and risen < good - 5
