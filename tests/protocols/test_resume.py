"""A run survives a controller crash: resumed from its journal, nothing done twice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from cellauto import Protocol, Run
from cellauto.errors import JournalError, OutcomeUnknownError, ResumeError, RunNotFoundError
from cellauto.instruments import Instrument, InstrumentIdentity, Line, command, query
from cellauto.protocols import Command, Runner, State
from cellauto.protocols.execution import Execution, RunOutcome
from cellauto.records import Journal, RecordKind, verify_run
from cellauto.records.backend import Location
from tests.protocols.harness import ORIGIN

pytestmark = pytest.mark.anyio

PORTION_S = 600.0  # each pump command takes 10 minutes of process time


class Pump(Instrument):
    """Owns its state, as instruments do: it outlives the controller."""

    interface_name = "Pump"

    def __init__(self, serial: str = "P-1") -> None:
        super().__init__(InstrumentIdentity(vendor="test", model="P1", serial=serial, firmware="1"))
        self.pumped_ml = 0.0
        self.commands = 0

    @command
    async def pump(self, volume_ml: float) -> float:
        self.commands += 1
        await anyio.sleep(PORTION_S)
        self.pumped_ml += volume_ml
        return self.pumped_ml

    @query
    async def total_ml(self) -> float:
        return self.pumped_ml


class ShakyPump(Pump):
    """A pump whose line priming is sent but never confirmed."""

    @command
    async def prime_line(self) -> None:
        raise OutcomeUnknownError("pump P-1: sent, but the connection dropped")


def make_protocol(transfer_policy: str = "reconcile", version: str = "1") -> Protocol:
    protocol = Protocol("resumable", version=version)

    @protocol.step(resume="rerun")
    async def prime(run: Run, pump: Pump) -> None:
        await pump.pump(1.0)

    @protocol.step(resume=transfer_policy)
    async def transfer(run: Run, pump: Pump) -> None:
        """Four portions of 10 mL; a resumed attempt asks the pump how many it delivered."""
        if run.resumed is None:
            run.set_value("ml before transfer", await pump.total_ml())
            done = 0
        else:
            run.set_value("resumed attempt", run.resumed.attempt)
            done = round((await pump.total_ml() - run.value("ml before transfer")) / 10.0)
        for _ in range(done, 4):
            await pump.pump(10.0)

    @protocol.step(resume="rerun")
    async def finish(run: Run, pump: Pump) -> None:
        run.set_value("total ml", await pump.total_ml())

    return protocol


class Controller:
    """A runner on a journal file, which can crash and be restarted."""

    def __init__(self, path: Path, pump: Pump) -> None:
        self.path = path
        self.pump = pump
        self.line = Line("test", {"pump": pump})
        self.journal = Journal(path)
        self.runner = Runner(self.journal, clock_origin=ORIGIN)

    async def crash_after(self, execution: Execution, seconds: float) -> None:
        """Execute, and let the controller die ``seconds`` of process time later."""

        async def execute() -> None:
            try:
                await execution.execute()
            except* JournalError:  # the dying run cannot write any more
                pass

        async with anyio.create_task_group() as tg:
            tg.start_soon(execute)
            await anyio.sleep(seconds)
            self.journal.abandon()
            tg.cancel_scope.cancel()

    def restart(self) -> None:
        self.journal = Journal(self.path)
        self.runner = Runner(self.journal, clock_origin=ORIGIN)

    def resume(
        self, run_id: str, crashed: Execution, protocol: Protocol | None = None
    ) -> Execution:
        return self.runner.resume(
            protocol or make_protocol(), self.line, run_id, clock=crashed.clock
        )


async def finish(execution: Execution) -> RunOutcome:
    outcome = await execution.execute()
    execution.close()
    return outcome


def kinds(journal: Journal, run_id: str, kind: RecordKind) -> list[Any]:
    return [r.payload for r in journal.records(run_id, {kind})]


async def test_a_run_crashed_mid_step_resumes_where_its_journal_says(
    db_location: Location, tmp_path: Path
) -> None:
    pump = Pump()
    controller = Controller(db_location, pump)
    first = controller.runner.prepare(make_protocol(), controller.line)
    # prime (10 min), then two portions of transfer and the third under way
    await controller.crash_after(first, 3.5 * PORTION_S)
    assert pump.commands == 4 and pump.pumped_ml == 21.0
    await anyio.sleep(1800)  # the controller is down for half an hour; the pump is idle
    controller.restart()
    resumed = controller.resume(first.run_id, first)
    outcome = await finish(resumed)

    assert outcome.exit_status == "complete"
    assert pump.pumped_ml == 41.0  # 1 + 4 x 10: no portion twice, none missing
    # prime once; the third portion, in doubt, had not been delivered (the pump says
    # so), so it was pumped on resume, then the fourth
    assert pump.commands == 6
    journal = controller.journal
    (resumed_record,) = kinds(journal, first.run_id, RecordKind.RUN_RESUMED)
    assert resumed_record.interrupted_step == "transfer"
    assert resumed_record.resume_policy == "reconcile"
    assert resumed_record.completed_steps == ["prime"]
    assert [c.method for c in resumed_record.in_doubt_commands] == ["pump"]
    assert resumed_record.since_last_record_s == pytest.approx(1800 + 0.5 * PORTION_S)
    values = {v.name: v.value for v in kinds(journal, first.run_id, RecordKind.BATCH_VALUE)}
    assert values["resumed attempt"] == 2
    assert values["total ml"] == 41.0
    started = kinds(journal, first.run_id, RecordKind.STEP_STARTED)
    assert [(s.step, s.attempt) for s in started] == [
        ("prime", 1),
        ("transfer", 1),
        ("transfer", 2),
        ("finish", 1),
    ]
    report = verify_run(journal, first.run_id)
    assert report.intact and report.sealed


async def test_the_tail_lost_in_a_crash_is_only_what_was_not_yet_committed(
    db_location: Location,
    tmp_path: Path,
) -> None:
    controller = Controller(db_location, Pump())
    first = controller.runner.prepare(make_protocol(), controller.line)
    await controller.crash_after(first, 1.5 * PORTION_S)
    controller.restart()
    records = controller.journal.records(first.run_id)
    # the last durable record (the second pump's intent) and all before it survive
    assert records[-1].kind is RecordKind.INSTRUMENT_COMMAND
    assert verify_run(controller.journal, first.run_id).intact
    assert not verify_run(controller.journal, first.run_id).sealed


async def test_an_operator_step_resumes_held_and_runs_again_on_restart(
    db_location: Location, tmp_path: Path
) -> None:
    pump = Pump()
    controller = Controller(db_location, pump)
    first = controller.runner.prepare(make_protocol("operator"), controller.line)
    await controller.crash_after(first, 2.5 * PORTION_S)
    commands_at_crash = pump.commands
    controller.restart()
    resumed = controller.resume(first.run_id, first, make_protocol("operator"))
    async with anyio.create_task_group() as tg:
        outcomes: list[RunOutcome] = []

        async def run() -> None:
            outcomes.append(await finish(resumed))

        tg.start_soon(run)
        await anyio.sleep(3600)
        assert resumed.state is State.HELD
        assert pump.commands == commands_at_crash  # nothing started while held
        resumed.command(Command.RESTART, by="operator jd", reason="bag checked: portion 1 done")
    assert outcomes[0].exit_status == "complete"
    holds = [
        c
        for c in kinds(controller.journal, first.run_id, RecordKind.COMMAND)
        if c.command == "Hold"
    ]
    assert "in doubt: pump.pump" in holds[-1].reason


async def test_a_crash_between_steps_resumes_at_the_next_step(
    db_location: Location, tmp_path: Path
) -> None:
    pump = Pump()
    controller = Controller(db_location, pump)
    first = controller.runner.prepare(make_protocol(), controller.line)

    async def hold_during_prime() -> None:
        await anyio.sleep(100)
        first.command(Command.HOLD, by="operator jd", reason="line check")

    async with anyio.create_task_group() as tg:
        tg.start_soon(hold_during_prime)
        await controller.crash_after(first, 2 * PORTION_S)  # held after prime
    controller.restart()
    resumed = controller.resume(first.run_id, first)
    assert resumed.resume_plan is not None
    assert (resumed.resume_plan.interrupted_step, resumed.resume_plan.next_step) == (None, 1)
    async with anyio.create_task_group() as tg:
        tg.start_soon(finish, resumed)
        await anyio.sleep(60)
        assert resumed.state is State.HELD
        resumed.command(Command.RESTART, by="operator jd")
    assert pump.commands == 5  # prime once, four portions
    (ended,) = kinds(controller.journal, first.run_id, RecordKind.RUN_ENDED)
    assert ended.exit_status == "complete"


async def test_a_run_held_at_the_crash_stays_held(db_location: Location, tmp_path: Path) -> None:
    controller = Controller(db_location, Pump())
    first = controller.runner.prepare(make_protocol(), controller.line)

    async def hold_then_crash() -> None:
        await anyio.sleep(100)
        first.command(Command.HOLD, by="operator jd", reason="checking a line")

    async with anyio.create_task_group() as tg:
        tg.start_soon(hold_then_crash)
        await controller.crash_after(first, 2 * PORTION_S)
    controller.restart()
    resumed = controller.resume(first.run_id, first)
    async with anyio.create_task_group() as tg:
        tg.start_soon(finish, resumed)
        await anyio.sleep(3600)
        assert resumed.state is State.HELD
        resumed.command(Command.STOP, by="operator jd")
    assert kinds(controller.journal, first.run_id, RecordKind.RUN_ENDED)[0].exit_status == (
        "stopped"
    )


async def test_a_run_stopping_at_the_crash_is_ended_on_resume(
    db_location: Location, tmp_path: Path
) -> None:
    pump = Pump()
    controller = Controller(db_location, pump)
    first = controller.runner.prepare(make_protocol(), controller.line)

    async def stop_then_crash() -> None:
        await anyio.sleep(100)
        first.command(Command.STOP, by="operator jd")

    async with anyio.create_task_group() as tg:
        tg.start_soon(stop_then_crash)
        await controller.crash_after(first, 200)
    controller.restart()
    outcome = await finish(controller.resume(first.run_id, first))
    assert (outcome.exit_status, outcome.state) == ("stopped", State.STOPPED)
    assert pump.commands == 1


def _ended_run(path: Path) -> tuple[str, Pump]:
    pump = Pump()

    async def main() -> str:
        with Journal(path) as journal:
            execution = Runner(journal, clock_origin=ORIGIN).prepare(
                make_protocol(), Line("test", {"pump": pump})
            )
            await finish(execution)
            return execution.run_id

    from cellauto.clock import virtual_loop_factory

    return anyio.run(main, backend_options={"loop_factory": virtual_loop_factory}), pump


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("version", "protocol version '1', not '2'"),
        ("serial", "'P-9' \\(serial\\) where the run started with 'P-1'"),
    ],
)
async def test_a_resume_under_another_protocol_or_instrument_is_refused_unwritten(
    db_location: Location, tmp_path: Path, change: str, message: str
) -> None:
    controller = Controller(db_location, Pump())
    first = controller.runner.prepare(make_protocol(), controller.line)
    await controller.crash_after(first, 1.5 * PORTION_S)
    controller.restart()
    before = len(controller.journal.records(first.run_id))
    protocol = make_protocol(version="2") if change == "version" else make_protocol()
    line = controller.line if change == "version" else Line("test", {"pump": Pump("P-9")})
    with pytest.raises(ResumeError, match=message):
        controller.runner.resume(protocol, line, first.run_id, clock=first.clock)
    assert len(controller.journal.records(first.run_id)) == before


def test_an_ended_or_unknown_run_is_not_resumed(db_location: Location, tmp_path: Path) -> None:
    run_id, pump = _ended_run(db_location)
    with Journal(db_location) as journal:
        runner = Runner(journal, clock_origin=ORIGIN)
        line = Line("test", {"pump": pump})
        with pytest.raises(ResumeError, match="has ended \\(complete, Complete\\)"):
            runner.resume(make_protocol(), line, run_id)
        with pytest.raises(RunNotFoundError):
            runner.resume(make_protocol(), line, "no-such-run")


async def test_a_resumed_step_s_maximum_duration_counts_from_its_first_start(
    db_location: Location,
    tmp_path: Path,
) -> None:
    protocol = Protocol("limited", version="1")

    @protocol.step(resume="rerun", max_duration_h=1, on_timeout="continue")
    async def slow(run: Run, pump: Pump) -> None:
        await pump.pump(1.0)  # 10 minutes
        await run.sleep(minutes=40)

    controller = Controller(db_location, Pump())
    first = controller.runner.prepare(protocol, controller.line)
    await controller.crash_after(first, 30 * 60)
    await anyio.sleep(20 * 60)
    controller.restart()
    resumed = controller.runner.resume(protocol, controller.line, first.run_id, clock=first.clock)
    await finish(resumed)
    (deviation,) = kinds(controller.journal, first.run_id, RecordKind.DEVIATION)
    assert deviation.check == "max duration"
    # first start + 1 h, i.e. 10 min into the second attempt (not 1 h into it)
    (started, *_) = controller.journal.records(first.run_id, {RecordKind.STEP_STARTED})
    (record,) = controller.journal.records(first.run_id, {RecordKind.DEVIATION})
    assert record.process_time_s - started.process_time_s == pytest.approx(3600)


def failing_protocol() -> Protocol:
    protocol = Protocol("failing", version="1")

    @protocol.step(resume="rerun")
    async def prime(run: Run, pump: Pump) -> None:
        await pump.pump(1.0)

    @protocol.step(resume="operator")
    async def dose(run: Run, pump: Pump) -> None:
        await pump.pump(5.0)
        raise RuntimeError("bag leak detected")

    return protocol


@pytest.mark.parametrize("dies_in", ["_abort_from_inside", "_complete_acting_state"])
async def test_a_run_whose_step_failed_just_before_the_crash_ends_failed_on_resume(
    db_location: Location, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dies_in: str
) -> None:
    pump = Pump()
    controller = Controller(db_location, pump)
    first = controller.runner.prepare(failing_protocol(), controller.line)
    original = getattr(Execution, dies_in)

    def die(self: Execution, *args: object, **kwargs: object) -> None:
        if dies_in == "_complete_acting_state" and self.state is not State.ABORTING:
            return original(self, *args, **kwargs)
        controller.journal.abandon()
        raise JournalError("the controller dies here")

    monkeypatch.setattr(Execution, dies_in, die)
    try:
        await first.execute()
    except* JournalError:
        pass
    monkeypatch.setattr(Execution, dies_in, original)
    controller.restart()
    outcome = await finish(controller.resume(first.run_id, first, failing_protocol()))
    assert (outcome.exit_status, outcome.state) == ("failed", State.ABORTED)
    assert outcome.reason == "RuntimeError: bag leak detected"
    assert pump.commands == 2  # the failed step is not run again
    started = kinds(controller.journal, first.run_id, RecordKind.STEP_STARTED)
    assert [s.step for s in started] == ["prime", "dose"]


async def test_a_maximum_hold_between_steps_still_runs_after_a_resume(
    db_location: Location, tmp_path: Path
) -> None:
    protocol = Protocol("hold-limited", version="1")

    @protocol.step(resume="rerun", max_hold_h=1)
    async def fill(run: Run, pump: Pump) -> None:
        await pump.pump(1.0)

    @protocol.step(resume="rerun")
    async def seal(run: Run, pump: Pump) -> None:
        await pump.total_ml()

    controller = Controller(db_location, Pump())
    first = controller.runner.prepare(protocol, controller.line)

    async def hold_during_fill() -> None:
        await anyio.sleep(60)
        first.command(Command.HOLD, by="operator jd")

    async with anyio.create_task_group() as tg:
        tg.start_soon(hold_during_fill)
        await controller.crash_after(first, 30 * 60)  # held after fill, 20 min into the hold
    controller.restart()
    resumed = controller.runner.resume(protocol, controller.line, first.run_id, clock=first.clock)
    async with anyio.create_task_group() as tg:
        tg.start_soon(finish, resumed)
        await anyio.sleep(3 * 3600)
        resumed.command(Command.RESTART, by="operator jd")
    (completed, *_) = controller.journal.records(first.run_id, {RecordKind.STEP_COMPLETED})
    (deviation,) = controller.journal.records(first.run_id, {RecordKind.DEVIATION})
    assert deviation.payload.check == "max hold"
    assert deviation.process_time_s - completed.process_time_s == pytest.approx(3600)


async def test_an_operator_step_resumed_while_held_needs_one_restart(
    db_location: Location, tmp_path: Path
) -> None:
    controller = Controller(db_location, Pump())
    first = controller.runner.prepare(make_protocol("operator"), controller.line)

    async def hold_during_transfer() -> None:
        await anyio.sleep(PORTION_S + 100)
        first.command(Command.HOLD, by="operator jd")

    async with anyio.create_task_group() as tg:
        tg.start_soon(hold_during_transfer)
        await controller.crash_after(first, 4 * PORTION_S)  # held inside transfer
    controller.restart()
    resumed = controller.resume(first.run_id, first, make_protocol("operator"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(finish, resumed)
        await anyio.sleep(600)
        resumed.command(Command.RESTART, by="operator jd", reason="bag checked")
        await anyio.sleep(6 * PORTION_S)
        assert resumed.state is State.COMPLETE


async def test_every_keeps_its_schedule_across_a_crash_and_skips_what_was_missed(
    db_location: Location,
    tmp_path: Path,
) -> None:
    ran: list[tuple[int, float]] = []

    def hourly_protocol() -> Protocol:
        protocol = Protocol("hourly", version="1")

        @protocol.step(resume="reconcile")
        async def sample(run: Run, pump: Pump) -> None:
            async for k in run.every(hours=1, times=5, checkpoint="samples done"):
                ran.append((k, (run.now() - run.step_started).total_seconds() / 3600))
                await pump.total_ml()

        return protocol

    controller = Controller(db_location, Pump())
    first = controller.runner.prepare(hourly_protocol(), controller.line)
    await controller.crash_after(first, 1.5 * 3600)  # after sample 1
    await anyio.sleep(3 * 3600)  # down until 4.5 h: samples 2 and 3 are missed
    controller.restart()
    resumed = controller.runner.resume(
        hourly_protocol(), controller.line, first.run_id, clock=first.clock
    )
    assert (await finish(resumed)).exit_status == "complete"
    assert ran == [(1, 1.0), (4, pytest.approx(4.5)), (5, 5.0)]  # 4 at once, 5 on time
    alarms = [a.message for a in kinds(controller.journal, first.run_id, RecordKind.ALARM)]
    assert sum("was missed while the controller was down" in a for a in alarms) == 2
    values = [
        v.value
        for v in kinds(controller.journal, first.run_id, RecordKind.CHECKPOINT)
        if v.name == "samples done"
    ]
    assert values == [1, 2, 3, 4, 5]


async def test_a_command_whose_outcome_was_unknown_stays_in_doubt_after_a_crash(
    db_location: Location,
    tmp_path: Path,
) -> None:
    protocol = Protocol("shaky", version="1")

    @protocol.step(resume="reconcile")
    async def transfer(run: Run, pump: ShakyPump) -> None:
        try:
            await pump.prime_line()
        except OutcomeUnknownError as exc:
            run.alarm(f"line priming in doubt ({exc}); going on")
        await pump.pump(10.0)

    pump = ShakyPump()
    controller = Controller(db_location, pump)
    first = controller.runner.prepare(protocol, controller.line)
    await controller.crash_after(first, PORTION_S / 2)  # during the pump
    controller.restart()
    resumed = controller.runner.resume(protocol, controller.line, first.run_id, clock=first.clock)
    assert resumed.resume_plan is not None
    assert [c.method for c in resumed.resume_plan.in_doubt] == ["prime_line", "pump"]


async def test_a_controller_stopping_mid_step_leaves_the_step_to_the_resume(
    db_location: Location,
) -> None:
    """A controller service stopping (SIGTERM) cancels its runs with the journal still
    open: the step in progress is left as a crash leaves it, not recorded as failed by an
    Abort (which a resume read as "aborted by command" and ended the run there)."""
    pump = Pump()
    controller = Controller(db_location, pump)
    first = controller.runner.prepare(make_protocol(), controller.line)

    async def execute() -> None:
        await first.execute()

    async with anyio.create_task_group() as tg:
        tg.start_soon(execute)
        await anyio.sleep(3.5 * PORTION_S)
        tg.cancel_scope.cancel()  # no Abort: the journal stays open and can write
    assert not kinds(controller.journal, first.run_id, RecordKind.STEP_FAILED)
    controller.journal.close()
    controller.restart()
    outcome = await finish(controller.resume(first.run_id, first))
    assert outcome.exit_status == "complete"
    assert pump.pumped_ml == 41.0  # every portion once
    started = kinds(controller.journal, first.run_id, RecordKind.STEP_STARTED)
    assert [s.step for s in started] == ["prime", "transfer", "transfer", "finish"]
