"""Shipments in a dry shipper: dispatch, receipt, carries; excursions are deviations."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from cellauto import Protocol, Run
from cellauto.cli import main
from cellauto.errors import ParameterError
from cellauto.instruments.dry_shipper import DryShipper
from cellauto.protocols import load_protocol
from cellauto.protocols.params import build_params
from cellauto.protocols.shipment import carry, dispatch, find_excursions, receive
from cellauto.records import Journal, verify_run
from cellauto.records import payloads as rec
from cellauto.records.backend import Location
from cellauto.records.material_payloads import (
    CustodyMoved,
    LoggerReading,
    Place,
    ShipmentRecorded,
)
from cellauto.records.spec import CheckPolicy
from cellauto.sim import ShipperLidOpen, ShipperWarming, SimulatedRun, simulate
from cellauto.sim.dry_shipper import SimDryShipper
from cellauto.sim.simulate import DEFAULT_SIM_START

REPO = Path(__file__).resolve().parents[2]
SHIP = REPO / "protocols" / "ship_product.py"
START = DEFAULT_SIM_START


def shipper_of(result: SimulatedRun) -> SimDryShipper:
    shipper = result.sim.equipment["dry_shipper"]
    assert isinstance(shipper, SimDryShipper)
    return shipper


def shipments(result: SimulatedRun, event: str) -> list[ShipmentRecorded]:
    return [s for s in result.of_kind(ShipmentRecorded) if s.event == event]


def test_ship_product_runs_end_to_end_on_the_simulated_line(
    db_location: Location, tmp_path: Path
) -> None:
    db = db_location
    params = {"containers": ["final product 1", "final product 2"], "transit_h": 30.0}
    result = simulate(SHIP, params=params, seed=3, db=db, patient="typical")
    assert result.exit_status == "complete"
    (sent,) = shipments(result, "dispatched")
    (got,) = shipments(result, "received")
    assert sent.shipment_id == got.shipment_id == "SHP-SIM-0001"
    assert sent.logger_serial == got.logger_serial == "LOG-DS-0001"
    assert sent.shipper == got.shipper == "dry shipper DS-0001"
    assert got.containers == ["final product 1", "final product 2"]
    assert got.destination == "Infusion centre (simulated)"
    assert sent.readings == [] and sent.at == START + timedelta(minutes=2)  # two loads
    assert len(got.readings) == 30 * 12  # every 5 min of the transit
    assert got.readings[0].time == START + timedelta(minutes=5)  # the first after dispatch
    assert got.min_c is not None and got.max_c is not None
    assert -192 < got.min_c < got.max_c < -185 and got.excursions == []
    assert result.deviations == [] and result.alarms == []
    moves = result.of_kind(CustodyMoved)
    assert [(m.container, m.to_place.kind, m.via) for m in moves] == [
        ("final product 1", "shipper", None),
        ("final product 2", "shipper", None),
        ("final product 1", "site", "dry shipper DS-0001"),
        ("final product 2", "site", "dry shipper DS-0001"),
    ]
    assert moves[0].by == "dry_shipper"
    assert result.duration_h == pytest.approx(30 + 4 / 60, abs=0.01)  # 2 loads, 2 unloads
    assert result.sim.world.clock.now() >= got.readings[-1].time
    assert shipper_of(result).logger_serial == "LOG-DS-0001"
    with Journal(db) as journal:
        assert verify_run(journal, result.outcome.run_id).intact


def test_cellauto_run_rehearses_it_with_sim_or_a_line_file(
    db_location: Location, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = db_location
    containers = '["final product 1", "final product 2"]'
    base = ["run", str(SHIP), "--db", str(db), "--param", f"containers={containers}"]
    assert main([*base, "--sim", "--param", "transit_h=6"]) == 0
    assert main([*base, "--line", str(REPO / "lines" / "sim-wire.toml")]) == 0
    assert "ended Complete" in capsys.readouterr().out
    with Journal(db, create=False) as journal:
        runs = journal.runs()
        assert len(runs) == 2
        adapters = set()
        for run in runs:
            records = journal.records(run.run_id)
            started = records[0].payload
            assert isinstance(started, rec.RunStarted)
            adapters.add(started.instruments["dry_shipper"].adapter)
            received = [
                r.payload
                for r in records
                if isinstance(r.payload, ShipmentRecorded) and r.payload.event == "received"
            ]
            assert len(received) == 1 and received[0].containers == [
                "final product 1",
                "final product 2",
            ]
    twice = ["run", str(SHIP), "--db", str(db), "--param", 'containers=["bag 1", "bag 1"]']
    assert adapters == {"in-process", "visa"}  # --sim; the line file serves it over SCPI
    assert main([*twice, "--sim"]) == 2  # refused, nothing written
    assert "named twice: bag 1" in capsys.readouterr().err
    with Journal(db, create=False) as journal:
        assert len(journal.runs()) == 2


def test_excursion_in_transit_is_an_alarm_and_a_deviation_that_holds() -> None:
    warming = ShipperWarming(at_h=10.0, rate_c_per_h=30.0, duration_h=2.0)
    result = simulate(
        SHIP, params={"transit_h": 24.0}, faults={"dry_shipper": [warming]}, patient="typical"
    )
    (got,) = shipments(result, "received")
    (excursion,) = got.excursions
    above = [r for r in got.readings if r.temperature_c > -150]
    assert excursion.start == above[0].time and excursion.end == above[-1].time
    assert excursion.max_c == max(r.temperature_c for r in got.readings) == got.max_c
    assert START + timedelta(hours=11, minutes=10) <= excursion.start
    assert excursion.start <= START + timedelta(hours=11, minutes=30)
    assert START + timedelta(hours=12) <= excursion.end <= START + timedelta(hours=12, minutes=15)
    assert excursion.max_c == pytest.approx(-130, abs=2)
    (deviation,) = result.deviations
    assert deviation.policy is CheckPolicy.HOLD
    assert deviation.check == "shipment 'SHP-SIM-0001': temperature in transit"
    assert deviation.value == excursion.max_c
    assert f"{excursion.start:%Y-%m-%d %H:%M} to {excursion.end:%Y-%m-%d %H:%M} UTC" in (
        deviation.description
    )
    assert "logger LOG-DS-0001 read above the limit -150 °C in 1 excursion(s)" in (
        deviation.description
    )
    (alarm,) = result.alarms
    assert alarm.severity == "major" and alarm.message == deviation.description
    assert "Held" in result.states and result.exit_status == "stopped"  # held, then stopped
    # held before the product was touched again: still in the shipper
    assert shipper_of(result)._contents == ["final product 1"]


def test_the_excursion_limit_is_the_callers() -> None:
    warming = ShipperWarming(at_h=1.0, rate_c_per_h=30.0, duration_h=0.5)  # peaks ~ -175
    quiet = simulate(
        SHIP, params={"transit_h": 4.0}, faults={"dry_shipper": [warming]}, patient="typical"
    )
    assert quiet.exit_status == "complete" and quiet.deviations == []
    strict = simulate(
        SHIP,
        params={"transit_h": 4.0, "limit_c": -180.0},
        faults={"dry_shipper": [warming]},
        patient="typical",
    )
    (got,) = shipments(strict, "received")
    assert got.limit_c == -180.0 and len(got.excursions) == 1
    assert len(strict.deviations) == 1


def test_ship_product_resumes_after_crashes_in_loading_and_in_transit() -> None:
    result = simulate(SHIP, params={"transit_h": 12.0}, crashes=[0.5 / 60, 6.0], patient="typical")
    assert result.exit_status == "complete" and result.deviations == []
    (sent,) = shipments(result, "dispatched")
    (got,) = shipments(result, "received")
    assert got.at is not None and got.at >= sent.at + timedelta(hours=12)
    assert len(got.readings) == 12 * 12  # none lost to the controller's downtime


def test_a_shipper_without_charge_for_the_trip_deviates_before_anything_is_loaded() -> None:
    result = simulate(SHIP, params={"transit_h": 230.0, "hold_margin_h": 24.0}, patient="typical")
    (deviation,) = result.deviations
    assert deviation.check == "shipment 'SHP-SIM-0001': shipper fit"
    assert "its charge holds 240.0 h, less than the 254 h needed" in deviation.description
    assert result.exit_status == "stopped"
    assert shipments(result, "dispatched") == []
    loads = [c for c in result.of_kind(rec.InstrumentCommand) if c.method == "load"]
    assert loads == [] and shipper_of(result)._contents == []


def test_a_shipper_holding_another_container_deviates_before_loading() -> None:
    async def body(run: Run, shipper: DryShipper) -> None:
        await shipper.load("stray bag")
        await dispatch(run, shipper, ["final product 1"], shipment_id="S1")

    result = simulate(_one_step(body), patient="typical")
    (deviation,) = result.deviations
    assert deviation.description == (
        "shipment 'S1': the shipper is not fit: it already holds other containers (stray bag); "
        "empty it"
    )
    assert result.exit_status == "stopped" and shipments(result, "dispatched") == []
    assert shipper_of(result)._contents == ["stray bag"]


def test_a_swapped_logger_and_a_logger_without_readings_are_deviations() -> None:
    async def body(run: Run, shipper: DryShipper) -> None:
        await dispatch(run, shipper, ["a"], shipment_id="S1")
        shipper.identity._logger_serial = "LOG-OTHER"  # type: ignore[misc]
        await receive(run, shipper, shipment_id="S1", policy="continue", unload=False)

    result = simulate(_one_step(body), patient="typical")
    assert result.exit_status == "complete"
    (deviation,) = result.deviations
    assert deviation.description == (
        "shipment 'S1': the shipper's logger is LOG-OTHER, but logger LOG-DS-0001 left with "
        "the shipment; its readings are not this shipment's evidence; shipment 'S1': logger "
        "LOG-OTHER has no reading since dispatch at 2026-01-05 08:01:00+00:00"
    )
    assert deviation.value == -150.0
    (got,) = shipments(result, "received")
    assert got.readings == [] and got.min_c is None and got.logger_serial == "LOG-OTHER"


def test_duplicate_containers_are_refused_before_anything_is_written() -> None:
    protocol = load_protocol(SHIP)
    with pytest.raises(ParameterError, match="named twice: bag 1"):
        build_params(protocol.params, {"containers": ["bag 1", "bag 2", "bag 1"]}, rehearsal=True)
    with pytest.raises(ParameterError, match="containers"):
        build_params(protocol.params, {"containers": []}, rehearsal=True)


def _one_step(body: object) -> Protocol:
    protocol = Protocol("shipper-test", version="1")

    @protocol.step(resume="reconcile")
    async def work(run: Run, dry_shipper: DryShipper) -> None:
        await body(run, dry_shipper)  # type: ignore[operator]

    return protocol


def test_bad_arguments_fail_the_step_with_nothing_recorded() -> None:
    async def no_containers(run: Run, shipper: DryShipper) -> None:
        await dispatch(run, shipper, [], shipment_id="S1")

    async def twice(run: Run, shipper: DryShipper) -> None:
        await dispatch(run, shipper, ["a", "b", "a"], shipment_id="S1")

    async def bad_policy(run: Run, shipper: DryShipper) -> None:
        await dispatch(run, shipper, ["a"], shipment_id="S1", policy="ignore")

    async def not_sent(run: Run, shipper: DryShipper) -> None:
        await receive(run, shipper, shipment_id="S9")

    cases = {
        no_containers: "containers [] must name at least one container",
        twice: "containers named twice: a",
        bad_policy: "policy 'ignore' is not one of hold, continue, abort",
        not_sent: "shipment 'S9': no dispatch of it is recorded in this run; dispatch() it first",
    }
    for body, message in cases.items():
        result = simulate(_one_step(body), patient="typical")
        (failed,) = result.of_kind(rec.StepFailed)
        assert message in failed.error, failed.error
        assert result.of_kind(ShipmentRecorded) == [] and result.of_kind(CustodyMoved) == []
        assert result.of_kind(rec.InstrumentCommand) == []


def test_crashes_mid_step_do_not_dispatch_receive_load_or_unload_twice() -> None:
    async def body(run: Run, shipper: DryShipper) -> None:
        sent = await dispatch(run, shipper, ["a", "b", "c"], shipment_id="S1")
        await run.sleep_until(sent.at + timedelta(hours=2))
        await receive(run, shipper, shipment_id="S1")

    # 1.5 min: "b" is being loaded (dispatched at 18.5 min after a 15 min downtime);
    # 1 h: in transit (the step runs again); 2 h 20 min: "b" is being unloaded
    crashes = [1.5 / 60, 1.0, 2 + 20 / 60]
    result = simulate(_one_step(body), crashes=crashes, downtime_h=0.25, patient="typical")
    assert result.exit_status == "complete"
    assert len(result.of_kind(rec.RunResumed)) == 3
    (sent,) = shipments(result, "dispatched")
    (got,) = shipments(result, "received")
    assert got.containers == ["a", "b", "c"] and got.excursions == []
    loaded = [
        c.arguments["container_id"]
        for c in result.of_kind(rec.InstrumentCommand)
        if c.method == "load"
    ]
    assert loaded == ["a", "b", "b", "c"]  # "b" again: its load was cut by the crash
    unloaded = [
        c.arguments["container_id"]
        for c in result.of_kind(rec.InstrumentCommand)
        if c.method == "unload"
    ]
    assert unloaded == ["a", "b", "b", "c"]
    assert [m.container for m in result.of_kind(CustodyMoved)] == ["a", "b", "c"] * 2
    assert shipper_of(result)._contents == []
    assert timedelta(0) < got.readings[0].time - sent.at <= timedelta(minutes=5)


def test_a_carry_records_custody_via_the_shipper_with_its_readings() -> None:
    async def body(run: Run, shipper: DryShipper) -> None:
        check = await carry(
            run,
            shipper,
            "final product",
            Place(kind="instrument", name="freezer"),
            Place(kind="storage", name="storage"),
            transit_min=10,
        )
        assert check.passed and check.readings == 2

    result = simulate(_one_step(body), patient="typical")
    assert result.exit_status == "complete"
    (move,) = result.of_kind(CustodyMoved)
    assert move.via == "dry shipper DS-0001" and move.by == "dry_shipper"
    assert move.from_place == Place(kind="instrument", name="freezer")
    assert move.to_place == Place(kind="storage", name="storage")
    assert [r.time for r in move.readings] == [START + timedelta(minutes=m) for m in (5, 10)]
    assert move.excursions == [] and result.deviations == []
    assert shipper_of(result)._contents == []


def test_a_carry_cut_by_a_crash_is_finished_once_with_every_reading() -> None:
    async def body(run: Run, shipper: DryShipper) -> None:
        here, there = Place(kind="instrument", name="freezer"), Place(kind="storage", name="ln2")
        await carry(run, shipper, "final product", here, there, transit_min=30)

    # at 10 min: in the walk; at 30.5 min: in the unload (30 to 31 min); 30 min downtime
    for crash_h, minutes in ((10 / 60, 40), (30.5 / 60, 60)):
        result = simulate(_one_step(body), crashes=[crash_h], downtime_h=0.5, patient="typical")
        assert result.exit_status == "complete"
        (move,) = result.of_kind(CustodyMoved)
        assert move.readings[-1].time == START + timedelta(minutes=minutes)
        assert len(move.readings) == minutes // 5
        methods = [
            r.method
            for r in result.of_kind(rec.InstrumentResponse)
            if r.ok and r.method in ("load", "unload")
        ]
        assert methods == ["load", "unload"]
        assert shipper_of(result)._contents == []


def test_an_excursion_during_a_carry_is_a_deviation_with_the_policy_given() -> None:
    async def body(run: Run, shipper: DryShipper) -> None:
        await carry(
            run,
            shipper,
            "final product",
            Place(kind="instrument", name="freezer"),
            Place(kind="storage", name="storage"),
            transit_min=40,
            policy="continue",
        )

    lid = ShipperLidOpen(at_h=0.05, duration_min=30)  # +60 °C
    result = simulate(_one_step(body), faults={"dry_shipper": [lid]}, patient="typical")
    assert result.exit_status == "complete"  # continue: recorded, not held
    (move,) = result.of_kind(CustodyMoved)
    (excursion,) = move.excursions
    assert -140 < excursion.max_c < -125  # 30 min at 2 °C/min, read every 5 min
    (deviation,) = result.deviations
    assert deviation.policy is CheckPolicy.CONTINUE
    assert deviation.check == "carry final product to storage: temperature"
    assert len(result.alarms) == 1


def test_an_excursion_during_a_carry_aborts_when_the_policy_says_so() -> None:
    async def body(run: Run, shipper: DryShipper) -> None:
        here, there = Place(kind="bench", name="lab"), Place(kind="storage", name="storage")
        await carry(run, shipper, "bag", here, there, transit_min=40, policy=CheckPolicy.ABORT)

    result = simulate(
        _one_step(body),
        faults={"dry_shipper": [ShipperLidOpen(duration_min=30)]},
        patient="typical",
    )
    assert result.exit_status == "aborted"
    assert [d.policy for d in result.deviations] == [CheckPolicy.ABORT]


def test_find_excursions_splits_runs_and_keeps_one_still_open() -> None:
    def at(minutes: int, temperature: float) -> LoggerReading:
        return LoggerReading(time=START + timedelta(minutes=minutes), temperature_c=temperature)

    readings = [at(0, -190), at(5, -149), at(10, -140), at(15, -150), at(20, -120), at(25, -100)]
    first, second = find_excursions(readings, -150.0)
    assert (first.start, first.end, first.max_c) == (readings[1].time, readings[2].time, -140)
    assert (second.start, second.end, second.max_c) == (readings[4].time, readings[5].time, -100)
    assert find_excursions(readings[:1], -150.0) == [] and find_excursions([], -150.0) == []


def _sweep_moments() -> list[float]:
    """Process hours at which to crash ship_product: inside each load and unload, a
    second after each, and mid-transit."""
    baseline = simulate(SHIP, params=SWEEP, seed=2, patient="typical")
    t0 = baseline.records[0].process_time_s
    moments = [SWEEP["transit_h"] / 2]
    for record in baseline.records:
        payload = record.payload
        if isinstance(payload, rec.InstrumentResponse) and payload.method in ("load", "unload"):
            done_h = (record.process_time_s - t0) / 3600
            moments += [done_h - 30 / 3600, done_h + 1 / 3600]
    return sorted(moments)


SWEEP = {"containers": ["final product 1", "final product 2"], "transit_h": 6.0}


@pytest.mark.parametrize("at_h", _sweep_moments())
def test_ship_product_survives_a_crash_anywhere(at_h: float) -> None:
    baseline = simulate(SHIP, params=SWEEP, seed=2, patient="typical")
    run = simulate(SHIP, params=SWEEP, seed=2, crashes=[at_h], downtime_h=0.5, patient="typical")
    assert run.exit_status == "complete", run.outcome.reason
    assert len(run.of_kind(rec.RunResumed)) <= 1  # 0: it had ended by then
    for event in ("dispatched", "received"):
        assert len(shipments(run, event)) == 1
    done = [
        (r.method, r.result)
        for r in run.of_kind(rec.InstrumentResponse)
        if r.ok and r.method in ("load", "unload")
    ]
    assert len(done) == 4  # each container loaded once and unloaded once
    assert len(run.of_kind(CustodyMoved)) == len(baseline.of_kind(CustodyMoved)) == 4
    assert shipper_of(run)._contents == []


CAR_T = REPO / "protocols" / "car_t_autologous.py"


@pytest.mark.parametrize(("days", "charged"), [(7, False), (12, True)])
def test_car_t_carries_its_bags_to_ln2_in_the_dry_shipper_with_its_logger(
    days: int, charged: bool
) -> None:
    """Each bag is carried from the freezer to LN2 in the dry shipper, the logger's
    readings on the custody record; a shipper whose charge would not last (12 days of
    culture outlast its 10-day hold time) is charged with LN2 first."""
    result = simulate(CAR_T, params={"expansion_days": days, "bags": 2}, patient="typical")
    assert result.exit_status == "complete", result.outcome.reason
    charges = [c for c in result.of_kind(rec.InstrumentCommand) if c.method == "charge"]
    assert len(charges) == (1 if charged else 0)
    carries = [m for m in result.of_kind(CustodyMoved) if m.via]
    assert [m.container for m in carries] == ["final product 1", "final product 2"]
    for carry_record in carries:
        assert carry_record.to_place.kind == "storage" and carry_record.readings
        assert max(r.temperature_c for r in carry_record.readings) < -150
        assert carry_record.excursions == []
    assert result.deviations == []


def test_show_tells_a_shipment_with_its_logger() -> None:
    from cellauto.records.wording import describe

    result = simulate(SHIP, params={"transit_h": 12.0}, patient="typical")
    lines = [describe(r) or "" for r in result.records if isinstance(r.payload, ShipmentRecorded)]
    assert lines[0].startswith("shipment SHP-SIM-0001 dispatched:")
    assert "received:" in lines[1] and "readings -1" in lines[1] and "EXCURSION" not in lines[1]
