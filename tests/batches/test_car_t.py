"""The autologous CAR-T protocol on the simulated line: results in range, faults handled.

These tests use the ``cellauto_sim`` fixture that cellauto's pytest plugin provides
to protocol authors.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from cellauto.records import payloads as rec
from cellauto.records.material_payloads import CustodyMoved, Transfer
from cellauto.records.wording_containers import describe_container
from cellauto.sim import (
    CommandFailure,
    Contamination,
    Disconnect,
    LN2LevelDrop,
    PowerLoss,
    SensorDrift,
    SimulatedRun,
    TemperatureExcursion,
)

CAR_T = Path(__file__).resolve().parents[2] / "protocols" / "car_t_autologous.py"
Sim = Callable[..., SimulatedRun]


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_batch_completes_within_published_ranges(cellauto_sim: Sim, seed: int) -> None:
    run = cellauto_sim(CAR_T, seed=seed, patient="typical")  # drawn: the fidelity table
    assert run.exit_status == "complete", run.outcome.reason
    assert run.deviations == [] or all(d.policy == "continue" for d in run.deviations)
    values = run.values
    assert 30 <= values["fold expansion"] <= 500  # PROCESS.md: 30-fold to 500-fold
    assert 0.8 <= values["dose"] / values["target dose"] <= 1.2
    assert values["target dose"] == pytest.approx(2e6 * 70)
    assert run.check("viability at release").value >= 80
    assert 20 <= run.check("CAR+ at release").value <= 80  # 20-80 % CAR+
    assert run.check("CD3+ at release").value >= 80
    assert -2.0 <= run.check("cooling rate through phase change").value <= -0.5
    assert run.check("final sample temperature").value <= -80
    assert run.check("storage temperature").value <= -150
    assert 9 <= run.duration_h / 24 <= 10
    freezer = run.sim.equipment["freezer"]
    assert 0.65 <= freezer.frozen["final product"].viability_factor <= 0.76  # post-thaw ~70-75 %
    assert 65 <= values["post-thaw viability"] <= 80  # the retained vial, thawed and counted
    stored = run.sim.equipment["storage"]
    assert "final product" in {item.container_id for item in stored._items.values()}


def test_dose_follows_patient_weight(cellauto_sim: Sim) -> None:
    light = cellauto_sim(CAR_T, seed=5, params={"patient_weight_kg": 40})
    heavy = cellauto_sim(CAR_T, seed=5, params={"patient_weight_kg": 150})
    assert light.values["target dose"] == pytest.approx(8e7)
    assert heavy.values["target dose"] == pytest.approx(2e8)  # capped at the label maximum
    # the protocol washes what the dose needs (1.3.0): the volume washed and the dose follow
    assert light.values["washed harvest volume"] < heavy.values["washed harvest volume"]
    assert light.values["dose"] < heavy.values["dose"]


def test_contamination_holds_the_batch_at_the_daily_count(cellauto_sim: Sim) -> None:
    run = cellauto_sim(CAR_T, seed=1, faults={"bioreactor": [Contamination(at_h=80)]})
    assert run.exit_status == "stopped"  # held, then stopped by the unattended policy
    (deviation,) = run.deviations
    assert deviation.check == "daily viability" and deviation.policy == "hold"
    assert run.states[-3:] == ["Held", "Stopping", "Stopped"]
    assert "formulate" not in {s.step for s in run.of_kind(rec.StepStarted)}


def test_temperature_excursion_is_caught_by_the_watch(cellauto_sim: Sim) -> None:
    fault = TemperatureExcursion(at_h=100, delta_c=4.0, duration_h=3)
    run = cellauto_sim(CAR_T, seed=1, faults={"bioreactor": [fault]}, on_hold="restart")
    assert run.exit_status == "complete"
    (deviation,) = run.deviations
    assert deviation.check == "culture temperature"
    assert "Held" in run.states and "Restarting" in run.states
    assert 40 <= run.check("culture temperature").value <= 42


def test_counter_drift_shows_as_a_viability_deviation(cellauto_sim: Sim) -> None:
    drift = SensorDrift(at_h=30, field="viability_pct", rate_per_h=-0.2)
    run = cellauto_sim(CAR_T, seed=1, faults={"counter": [drift]})
    assert run.exit_status == "stopped"
    assert run.deviations[0].check == "daily viability"


def test_a_short_outage_is_ridden_out_with_alarms(cellauto_sim: Sim) -> None:
    """A 1 h disconnect: the watch and the daily count retry; the gap is alarmed."""
    outage = Disconnect(at_h=52.5, duration_h=1.5)  # across the day-2 count
    run = cellauto_sim(CAR_T, seed=1, faults={"bioreactor": [outage]})
    assert run.exit_status == "complete"
    alarms = [a.message for a in run.of_kind(rec.Alarm)]
    assert alarms and all("disconnected" in a for a in alarms)
    failed = [r for r in run.of_kind(rec.InstrumentResponse) if not r.ok]
    assert failed and all(r.instrument == "bioreactor" for r in failed)


@pytest.mark.parametrize(
    "fault",
    [Disconnect(at_h=47.9, duration_h=10.0), CommandFailure(at_h=47.9, count=4, message="pump")],
    ids=["long disconnect", "command failures"],
)
def test_a_lasting_instrument_failure_fails_the_batch(cellauto_sim: Sim, fault) -> None:
    run = cellauto_sim(CAR_T, seed=1, faults={"bioreactor": [fault]})
    assert run.exit_status == "failed" and run.outcome.state == "Aborted"
    alarm = run.of_kind(rec.Alarm)[-1]
    assert alarm.severity == "critical" and "Bioreactor" in alarm.message


@pytest.mark.parametrize(("days", "low", "high"), [(7, 12, 40), (12, 50, 200)])
def test_expansion_length_sets_the_fold(cellauto_sim: Sim, days: int, low: float, high: float):
    run = cellauto_sim(CAR_T, seed=2, params={"expansion_days": days}, patient="typical")
    assert run.exit_status == "complete", run.outcome.reason
    assert low <= run.values["fold expansion"] <= high
    assert run.values["washed harvest volume"] <= run.values["harvest volume"]


def test_an_unknown_drifting_sensor_is_refused(cellauto_sim: Sim) -> None:
    from cellauto.errors import InstrumentError

    with pytest.raises(InstrumentError, match="no sensor 'viability' can drift"):
        cellauto_sim(CAR_T, faults={"counter": [SensorDrift(field="viability", rate_per_h=1)]})


def _freeze_start_h(cellauto_sim: Sim) -> float:
    ok = cellauto_sim(CAR_T, seed=1)
    started = next(
        r.process_time_s
        for r in ok.records
        if r.kind == "step_started" and r.payload.step == "freeze"
    )
    return (started - ok.records[0].process_time_s) / 3600


@pytest.mark.parametrize(("after_h", "minutes"), [(0.05, 20), (0.9, 45)])
def test_power_loss_during_the_freeze_is_a_deviation(
    cellauto_sim: Sim, after_h: float, minutes: float
) -> None:
    fault = PowerLoss(at_h=_freeze_start_h(cellauto_sim) + after_h, duration_min=minutes)
    run = cellauto_sim(CAR_T, seed=1, faults={"freezer": [fault]})
    assert run.exit_status == "stopped"
    assert {d.check for d in run.deviations} & {"freeze completed", "power interruptions"}
    curve = [r for r in run.of_kind(rec.Reading) if r.method == "temperatures"]
    assert len(curve) > 60  # the freeze curve is in the record


def test_an_ln2_drop_stops_the_bag_going_into_warm_storage(cellauto_sim: Sim) -> None:
    run = cellauto_sim(CAR_T, seed=1, faults={"storage": [LN2LevelDrop(at_h=100, drop_pct=80)]})
    assert run.exit_status == "stopped"
    deviation = run.deviations[0]
    assert deviation.check == "storage temperature"
    assert not any(r.method == "store" for r in run.of_kind(rec.InstrumentCommand))


def test_counts_are_diluted_into_the_linear_range(cellauto_sim: Sim) -> None:
    """1.3.0: dense samples are counted diluted (or recounted), never out of range."""
    run = cellauto_sim(CAR_T, seed=1, patient="typical")
    counts = [
        r.result
        for r in run.of_kind(rec.InstrumentResponse)
        if r.instrument == "counter" and r.method == "count" and r.ok
    ]
    assert counts and all(c["range_flag"] == "in_range" for c in counts[-3:])
    assert max(c["dilution"] for c in counts) >= 10  # the washed product at ~1e8/mL
    assert "count in linear range" not in {d.check for d in run.deviations}


def test_the_wash_takes_what_the_dose_needs_and_the_rest_goes_to_waste(cellauto_sim: Sim):
    run = cellauto_sim(CAR_T, seed=1, patient="typical")
    values = run.values
    assert values["washed harvest volume"] < values["harvest volume"] - 1.0
    assert values["harvest cells not washed"] > 1e9
    assert run.check("wash within capacity").value == 0
    assert run.check("minimum harvest").passed
    (waste,) = [m for m in run.of_kind(CustodyMoved) if m.to_place.name == "waste"]
    assert waste.container == "harvest bag" and "unwashed rest of the harvest" in waste.reason
    assert "-> waste by operator: unwashed rest of the harvest" in str(describe_container(waste))


def test_freeze_rate_is_checked_and_release_specs_continue(cellauto_sim: Sim) -> None:
    run = cellauto_sim(CAR_T, seed=1, patient="typical")
    rate = run.check("cooling rate through phase change")
    assert rate.spec.min == -2.0 and rate.spec.max == -0.5 and rate.spec.policy == "continue"
    for name in ("dose", "viability at release", "CD3+ at release", "CAR+ at release"):
        assert run.check(name).spec.policy == "continue", name


def test_too_small_a_harvest_is_extended_then_aborted_before_the_wash(cellauto_sim: Sim):
    """A dose far beyond what the culture gives: the culture runs to its last day, then
    the harvest is a manufacturing failure (abort), never an exception."""
    params = {"patient_weight_kg": 250, "dose_car_t_per_kg": 1e8, "max_dose_car_t": 1e11}
    run = cellauto_sim(CAR_T, seed=1, patient="typical", params=params)
    assert run.exit_status == "aborted", run.outcome.reason
    assert run.values["culture days"] == 12
    assert not run.check("projected dose").passed
    assert [d.check for d in run.deviations] == ["projected dose", "minimum harvest"]
    assert not any(
        c.method == "run_program" and c.arguments["template_id"] == "WASH_CONCENTRATE"
        for c in run.of_kind(rec.InstrumentCommand)
    )


def test_release_samples_on_the_liquid_handler(cellauto_sim: Sim) -> None:
    """1.3.0: the QC sample is drawn and aliquoted by the liquid handler (tips and volumes
    tracked); the release count is the mean of the two counting tubes, the phenotype from
    a well; the retained vials freeze with the bag."""
    run = cellauto_sim(CAR_T, seed=1, patient="typical")
    assert run.exit_status == "complete", run.outcome.reason
    moves = [
        r.result
        for r in run.of_kind(rec.InstrumentResponse)
        if r.instrument == "liquid_handler" and r.ok and r.method in ("transfer", "aliquot")
    ]
    transfers = [t for m in moves for t in (m if isinstance(m, list) else [m])]
    assert [t["destination_container_id"] for t in transfers] == [
        "QC sample",
        "count 1",
        "count 2",
        *[f"release plate:{w}" for w in ("A1", "A2", "A3", "A4")],
        "QC retain 1",
        "QC retain 2",
    ]
    tips = [tip for t in transfers for tip in t["tips_used"]]
    assert len(tips) == len(set(tips)) == 9  # a fresh tip per destination
    handler = run.sim.equipment["liquid_handler"]
    world = run.sim.world
    for container_id, resource in handler.layout.containers.items():
        if container_id in world.containers:  # the trackers and the world agree
            assert resource.tracker.get_used_volume() == pytest.approx(
                world.containers[container_id].volume_ml * 1000, abs=1e-6
            ), container_id
    assert world.containers["QC sample"].volume_ml == pytest.approx(2.5 - 0.4 - 0.4 - 1.0)
    counted = [
        r.arguments["sample"]["sample_id"]
        for r in run.of_kind(rec.InstrumentCommand)
        if r.instrument in ("counter", "cytometer") and r.step == "prepare_release_samples"
    ]
    assert counted == ["count 1", "count 2", "release plate:A1"]
    recorded = {(t.source, t.destination) for t in run.of_kind(Transfer)}
    assert ("final product", "QC sample") in recorded
    assert ("QC sample", "QC retain 2") in recorded
    started = [c for c in run.of_kind(rec.InstrumentCommand) if c.method == "start"]
    assert started[-1].arguments["container_ids"] == ["final product", "QC retain 1", "QC retain 2"]


def test_a_retained_vial_is_thawed_and_counted(cellauto_sim: Sim) -> None:
    run = cellauto_sim(CAR_T, seed=1, patient="typical")
    assert 60 <= run.values["post-thaw viability"] <= 85
    assert 40 <= run.values["post-thaw viable recovery"] <= 100
    assert run.check("post-thaw viability").spec.policy == "continue"
    (thaw,) = [r for r in run.of_kind(rec.InstrumentResponse) if r.method == "thaw"]
    assert thaw.ok and thaw.result["container_id"] == "QC retain 1"
    assert run.sim.world.containers["QC retain 2"].frozen is not None
