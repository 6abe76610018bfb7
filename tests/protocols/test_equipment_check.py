"""A run's instruments against the equipment registry: at prepare and at each step's start."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from cellauto import Protocol, Run
from cellauto.clock import Clock
from cellauto.errors import EquipmentRefusedError
from cellauto.instruments import CellCounter
from cellauto.instruments.base import Instrument, InstrumentIdentity
from cellauto.protocols.runner import Runner
from cellauto.records import Journal
from cellauto.records import payloads as rec
from cellauto.records.backend import Location
from cellauto.records.material_payloads import EquipmentChecked
from cellauto.records.release_plan import ReleasePlan
from cellauto.records.site_payload_base import SitePayload
from cellauto.records.site_payloads_mat import (
    CalibrationRecorded,
    EquipmentAdded,
    EquipmentStatus,
    EquipmentStatusChanged,
)
from cellauto.records.wording import describe
from cellauto.sim import simulate
from cellauto.sim.line import sim_line_for_protocol
from cellauto.sim.simulate import DEFAULT_SIM_START
from cellauto.sim.site import SIM_TERMINAL, SimSite
from cellauto.sim.site_for_run import simulated_site
from cellauto.site.view import FileSite

START = DEFAULT_SIM_START  # 2026-01-05 08:00 UTC
ASSET = "SIM-counter"


def _protocol(
    first_h: float = 24, first_actual_h: float | None = None, second_h: float = 24
) -> Protocol[Any]:
    """Two steps on the counter: ``first`` expected ``first_h`` (taking ``first_actual_h``)."""
    protocol = Protocol("equipment-check", version="1")

    @protocol.step(expected_duration_h=first_h, resume="rerun")
    async def first(run: Run, counter: CellCounter) -> None:
        await anyio.sleep((first_h if first_actual_h is None else first_actual_h) * 3600)

    @protocol.step(expected_duration_h=second_h)
    async def second(run: Run, counter: CellCounter) -> None:
        await anyio.sleep(second_h * 3600)

    return protocol


def _status(status: EquipmentStatus, asset: str = ASSET) -> EquipmentStatusChanged:
    return EquipmentStatusChanged(
        by="sim:supervisor", terminal=SIM_TERMINAL, asset=asset, status=status
    )


def _calibrated(due: date, result: str = "pass") -> CalibrationRecorded:
    return CalibrationRecorded(
        by="sim:supervisor",
        terminal=SIM_TERMINAL,
        asset=ASSET,
        performed_on=START.date(),
        result=result,  # type: ignore[arg-type]
        due=due,
    )


def _refused(db_location: Location, records: Sequence[SitePayload], protocol: Protocol[Any]) -> str:
    db = db_location
    with pytest.raises(EquipmentRefusedError) as refused:
        simulate(protocol, db=db, site_records=records, patient="typical")
    with Journal(db) as journal:
        assert journal.run_count() == 0  # nothing written
    return str(refused.value)


def test_each_instrument_checked_right_after_run_started_the_plan_and_the_claim() -> None:
    run = simulate(_protocol(), seed=1, patient="typical")
    assert run.exit_status == "complete"
    assert isinstance(run.records[0].payload, rec.RunStarted)
    assert isinstance(run.records[1].payload, ReleasePlan)  # none declared: an empty plan
    assert isinstance(run.records[2].payload, rec.ControllerClaimed)
    start_check = run.records[3].payload
    assert isinstance(start_check, EquipmentChecked)
    assert (start_check.step, start_check.equipment, start_check.asset) == (None, "counter", ASSET)
    assert start_check.passed and start_check.status == "in_service"
    assert start_check.through == START + timedelta(hours=48)  # the end of `second`
    assert start_check.site is not None
    steps = [c.step for c in run.of_kind(EquipmentChecked)]
    assert steps == [None, "first", "second"]


def test_seeded_runs_stay_reproducible() -> None:
    one, two = (
        simulate(_protocol(), seed=3, patient="typical"),
        simulate(_protocol(), seed=3, patient="typical"),
    )
    assert [r.hash for r in one.records] == [r.hash for r in two.records]


def test_out_of_service_refused_nothing_written(db_location: Location) -> None:
    message = _refused(db_location, [_status(EquipmentStatus.OUT_OF_SERVICE)], _protocol())
    assert "counter: registry asset SIM-counter is out_of_service, not in_service" in message


def test_failed_calibration_takes_it_out_of_service(db_location: Location) -> None:
    message = _refused(db_location, [_calibrated(date(2027, 1, 1), "fail")], _protocol())
    assert "is out_of_service" in message


def test_calibration_due_before_the_end_of_its_last_step_refused(db_location: Location) -> None:
    # `second` is planned to end 2026-01-07 08:00; calibrated through the 6th only
    message = _refused(db_location, [_calibrated(date(2026, 1, 6))], _protocol())
    assert (
        "counter: registry asset SIM-counter is calibrated through 2026-01-06, not through"
        " 2026-01-07 (the planned end of step 'second')"
    ) in message
    assert "cellauto equipment calibrate SIM-counter" in message


def test_calibrated_through_the_last_day_of_use_passes() -> None:
    run = simulate(_protocol(), site_records=[_calibrated(date(2026, 1, 7))], patient="typical")
    assert run.exit_status == "complete"


async def _prepare_on(
    db: Path | Location, site_of: Callable[[Protocol[Any], Any], Any], assets: dict[str, str]
) -> None:
    protocol = _protocol()
    clock = Clock(START)
    sim = sim_line_for_protocol(protocol, protocol.params(), clock=clock, seed=1)
    assert sim.line is not None
    site = site_of(protocol, sim.line)
    sim.line.assets = assets  # the line file ties the counter to an asset
    with Journal(db) as journal:
        try:
            Runner(journal, clock_origin=START).prepare(protocol, sim.line, site=site)
        finally:
            assert journal.run_count() == 0
            site.close()


@pytest.mark.anyio
async def test_serial_read_at_connect_differs_from_the_registry_refused(
    db_location: Location,
) -> None:
    def site_of(protocol: Protocol[Any], line: Any) -> SimSite:
        ident = line.equipment["counter"].identity
        other = EquipmentAdded(
            by="sim:supervisor",
            terminal=SIM_TERMINAL,
            asset="CC-100",
            interface="CellCounter",
            vendor=ident.vendor,
            model=ident.model,
            serial="CC-9999",
            qualification={"iq": "2025-01-01", "oq": "2025-01-01", "pq": "2025-01-01"},  # type: ignore[arg-type]
        )
        records = [other, _status(EquipmentStatus.IN_SERVICE, "CC-100")]
        return simulated_site(protocol, protocol.params(), line, START, records=records)

    with pytest.raises(EquipmentRefusedError) as refused:
        await _prepare_on(db_location, site_of, {"counter": "CC-100"})
    assert (
        "counter: serial read at connect 'CC-0002' differs from registry asset CC-100"
        " serial 'CC-9999'"
    ) in str(refused.value).replace(await _serial_of_counter(), "CC-0002")


async def _serial_of_counter() -> str:
    protocol = _protocol()
    sim = sim_line_for_protocol(protocol, protocol.params(), clock=Clock(START), seed=1)
    assert sim.line is not None
    return sim.line.equipment["counter"].identity.serial


@pytest.mark.anyio
async def test_a_plant_line_whose_registry_lacks_the_instrument_refused(
    db_location: Location, tmp_path: Path
) -> None:
    Journal(db_location).close()
    with pytest.raises(
        EquipmentRefusedError,
        match=r"registry knows none of the line's instruments \(counter\).*cellauto equipment add",
    ):
        await _prepare_on(db_location, lambda protocol, line: FileSite(db_location), {})


@pytest.mark.anyio
async def test_a_plant_line_with_no_journal_yet_refused(tmp_path: Path) -> None:
    missing = tmp_path / "none" / "journal.db"
    with pytest.raises(EquipmentRefusedError, match=r"cannot be read.*cellauto equipment add"):
        await _prepare_on(tmp_path / "journal.db", lambda protocol, line: FileSite(missing), {})


def _capture_site(monkeypatch: pytest.MonkeyPatch) -> list[SimSite]:
    made: list[SimSite] = []

    def capturing(*args: Any, **kwargs: Any) -> SimSite:
        site = simulated_site(*args, **kwargs)
        made.append(site)
        return site

    monkeypatch.setattr(sys.modules["cellauto.sim.simulate"], "simulated_site", capturing)
    return made


def _at(now_s: float) -> datetime:
    return datetime.fromtimestamp(now_s, tz=UTC)


def test_calibration_lapsing_mid_run_holds_the_step_with_a_deviation() -> None:
    # `first` is expected to take 1 h but takes 3 days: `second` would run past the 7th
    protocol = _protocol(first_h=1, first_actual_h=72, second_h=1)
    run = simulate(protocol, site_records=[_calibrated(date(2026, 1, 7))], patient="typical")
    assert run.exit_status == "stopped"
    failed = [c for c in run.of_kind(EquipmentChecked) if not c.passed]
    assert [(c.step, c.calibration_due) for c in failed] == [("second", date(2026, 1, 7))]
    (deviation,) = run.of_kind(rec.Deviation)
    assert (deviation.step, deviation.check, deviation.policy.value) == (
        "second",
        "equipment",
        "hold",
    )
    assert "calibrated through 2026-01-07, not through 2026-01-08" in deviation.description
    assert [s.step for s in run.of_kind(rec.StepStarted)] == ["first"]  # never started
    (shown,) = [describe(r) for r in run.records if r.payload == failed[0]]
    assert shown is not None and shown.startswith("equipment counter (asset SIM-counter, serial ")
    assert "FAIL: counter: registry asset SIM-counter is calibrated through 2026-01-07" in shown


def test_taken_out_of_service_during_a_run_holds_the_next_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sites = _capture_site(monkeypatch)

    def out_after_first(payload: rec.Payload, now_s: float) -> None:
        if isinstance(payload, rec.StepCompleted) and payload.step == "first":
            sites[0].at(_at(now_s)).append([_status(EquipmentStatus.OUT_OF_SERVICE)])

    run = simulate(_protocol(), observers=[out_after_first], patient="typical")
    assert run.exit_status == "stopped"
    (failed,) = [c for c in run.of_kind(EquipmentChecked) if not c.passed]
    assert (failed.step, failed.status) == ("second", "out_of_service")
    (deviation,) = run.of_kind(rec.Deviation)
    assert "SIM-counter is out_of_service" in deviation.description
    assert [s.step for s in run.of_kind(rec.StepStarted)] == ["first"]


def test_restart_after_recalibration_proceeds(monkeypatch: pytest.MonkeyPatch) -> None:
    sites = _capture_site(monkeypatch)

    def recalibrate(payload: rec.Payload, now_s: float) -> None:
        if isinstance(payload, rec.Deviation) and payload.check == "equipment":
            sites[0].at(_at(now_s)).append([_calibrated(date(2027, 1, 1))])

    protocol = _protocol(first_h=1, first_actual_h=72, second_h=1)
    run = simulate(
        protocol,
        site_records=[_calibrated(date(2026, 1, 7))],
        observers=[recalibrate],
        on_hold="restart",
        patient="typical",
    )
    assert run.exit_status == "complete"
    second = [
        (c.passed, c.calibration_due) for c in run.of_kind(EquipmentChecked) if c.step == "second"
    ]
    assert second == [(False, date(2026, 1, 7)), (True, date(2027, 1, 1))]
    (restart,) = [c for c in run.of_kind(rec.Command) if c.command == "Restart"]
    assert restart.accepted and restart.signature is not None  # a supervisor approved
    assert [s.step for s in run.of_kind(rec.StepStarted)] == ["first", "second"]


def test_restart_while_still_out_of_service_holds_again(monkeypatch: pytest.MonkeyPatch) -> None:
    sites = _capture_site(monkeypatch)
    deviations = 0

    def fix_on_second_deviation(payload: rec.Payload, now_s: float) -> None:
        nonlocal deviations
        if isinstance(payload, rec.Deviation):
            deviations += 1
            if deviations == 2:
                sites[0].at(_at(now_s)).append([_status(EquipmentStatus.IN_SERVICE)])

    def out_after_first(payload: rec.Payload, now_s: float) -> None:
        if isinstance(payload, rec.StepCompleted) and payload.step == "first":
            sites[0].at(_at(now_s)).append([_status(EquipmentStatus.OUT_OF_SERVICE)])

    run = simulate(
        _protocol(),
        observers=[out_after_first, fix_on_second_deviation],
        on_hold="restart",
        patient="typical",
    )
    assert run.exit_status == "complete"
    assert [c.passed for c in run.of_kind(EquipmentChecked) if c.step == "second"] == [
        False,
        False,
        True,
    ]


def test_resume_checks_again() -> None:
    run = simulate(_protocol(), crashes=[10.0], downtime_h=1, on_hold="restart", patient="typical")
    assert run.exit_status == "complete"
    assert [c.step for c in run.of_kind(EquipmentChecked)] == [None, "first", "first", "second"]


def test_an_instrument_swapped_behind_its_endpoint_holds_the_next_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    swapped = False

    async def identity_now(self: Instrument) -> InstrumentIdentity:  # as after a reconnect
        if swapped:
            self.identity = self.identity.model_copy(update={"serial": "CC-SWAPPED"})
        return self.identity

    monkeypatch.setattr(Instrument, "identity_now", identity_now)

    def swap_after_first(payload: rec.Payload, now_s: float) -> None:
        nonlocal swapped
        swapped = swapped or (isinstance(payload, rec.StepCompleted) and payload.step == "first")

    run = simulate(_protocol(), observers=[swap_after_first], patient="typical")
    assert run.exit_status == "stopped"
    (failed,) = [c for c in run.of_kind(EquipmentChecked) if not c.passed]
    assert (failed.step, failed.serial_read) == ("second", "CC-SWAPPED")
    assert "serial read at connect 'CC-SWAPPED' differs from registry asset SIM-counter" in (
        failed.problem or ""
    )


def test_after_a_resume_the_instrument_is_still_held_to_its_asset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    swapped = False

    async def identity_now(self: Instrument) -> InstrumentIdentity:  # another device answers
        if swapped:
            self.identity = self.identity.model_copy(update={"serial": "CC-SWAPPED"})
        return self.identity

    monkeypatch.setattr(Instrument, "identity_now", identity_now)

    def swap_at_resume(payload: rec.Payload, now_s: float) -> None:
        nonlocal swapped
        swapped = swapped or isinstance(payload, rec.RunResumed)

    run = simulate(
        _protocol(), crashes=[10.0], downtime_h=1, observers=[swap_at_resume], patient="typical"
    )
    assert run.exit_status == "stopped"
    (failed,) = [c for c in run.of_kind(EquipmentChecked) if not c.passed]
    assert (failed.step, failed.asset) == ("first", ASSET)
    assert "serial read at connect 'CC-SWAPPED' differs from registry asset SIM-counter" in (
        failed.problem or ""
    )


def test_an_unattended_restart_policy_stops_a_run_that_no_restart_can_clear(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Out of service for good: restarted 3 times for the same cause, then stopped
    (the responder says why), instead of holding and restarting without end."""
    sites = _capture_site(monkeypatch)

    def out_after_first(payload: rec.Payload, now_s: float) -> None:
        if isinstance(payload, rec.StepCompleted) and payload.step == "first":
            sites[0].at(_at(now_s)).append([_status(EquipmentStatus.OUT_OF_SERVICE)])

    run = simulate(_protocol(), observers=[out_after_first], on_hold="restart", patient="typical")
    assert run.exit_status == "stopped"
    commands = [(c.command, c.reason) for c in run.of_kind(rec.Command) if c.accepted]
    assert [c for c, _ in commands].count("Restart") == 3
    assert commands[-1][0] == "Stop"
    assert "held 4 times at step 'second' for the same cause after 3 automatic" in commands[-1][1]
    assert [c.passed for c in run.of_kind(EquipmentChecked) if c.step == "second"] == [False] * 4
