"""Runner behaviour: checks and their policies, failures, watchdogs, concurrency."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from typing import Any

import anyio
import pytest

from cellauto import Params, Protocol, Run, Spec
from cellauto.errors import EquipmentError, ParameterError, ProtocolDefinitionError
from cellauto.instruments import Instrument, InstrumentIdentity, Line, command, query, stream
from cellauto.protocols import Runner, State
from cellauto.records import Journal, verify_run
from cellauto.records import payloads as rec
from cellauto.records.backend import Location
from tests.protocols.harness import ORIGIN, Valve, supervisor_approval
from tests.raw_sql import raw_connect

pytestmark = pytest.mark.anyio


class Probe(Instrument):
    """Reads a value, fails on request, streams readings."""

    interface_name = "Probe"

    def __init__(self, value: float = 5.0) -> None:
        super().__init__(InstrumentIdentity(vendor="test", model="P", serial="P-1", firmware="2"))
        self.value = value

    @query
    async def read(self) -> float:
        return self.value

    @command
    async def break_down(self) -> None:
        raise RuntimeError("probe broke")

    @stream
    async def readings(self, count: int) -> AsyncIterator[float]:
        for i in range(count):
            await anyio.sleep(60)
            yield self.value + i


def kinds(journal: Journal, run_id: str, kind: str) -> list[Any]:
    return [r.payload for r in journal.records(run_id) if r.kind == kind]


def one_step(body: Any, **options: Any) -> Protocol:
    protocol = Protocol("one-step", version="1")
    protocol.step(name="only", **options)(body)
    return protocol


async def test_failed_check_with_hold_policy_holds_before_the_next_command(
    journal: Journal,
) -> None:
    valve = Valve()

    async def only(run: Run, valve: Valve) -> None:
        run.check("pressure", 9.0, Spec(max=5, unit="bar"))
        await valve.open()

    runner = Runner(journal, clock_origin=ORIGIN)
    ex = runner.prepare(one_step(only), Line("t", {"valve": valve}))
    async with anyio.create_task_group() as tg:
        tg.start_soon(ex.execute)
        await anyio.sleep(10)
        assert ex.state is State.HELD
        assert valve.opened == 0
        ex.command("Restart", by="sam", reason="deviation assessed", approval=supervisor_approval())
        await anyio.sleep(10)
    assert ex.state is State.COMPLETE and valve.opened == 1
    (deviation,) = kinds(journal, ex.run_id, "deviation")
    assert deviation.policy == "hold" and "pressure = 9 bar" in deviation.description
    assert "<= 5 bar" in deviation.description


@pytest.mark.parametrize(
    ("policy", "exit_status", "final"),
    [("continue", "complete", State.COMPLETE), ("abort", "aborted", State.ABORTED)],
)
async def test_failed_check_policy(
    journal: Journal, policy: str, exit_status: str, final: State
) -> None:
    reached_end = []

    async def only(run: Run) -> None:
        result = run.check("viability", 50)
        reached_end.append(result.passed)

    protocol = one_step(only, checks={"viability": Spec(min=70, unit="%", policy=policy)})
    outcome = await Runner(journal, clock_origin=ORIGIN).run(protocol, Line("t", {}))
    assert outcome.exit_status == exit_status and outcome.state is final
    assert reached_end == ([False] if policy == "continue" else [])
    (check,) = kinds(journal, outcome.run_id, "check_result")
    assert check.passed is False and check.spec.min == 70
    assert len(kinds(journal, outcome.run_id, "deviation")) == 1


async def test_passing_check_records_no_deviation(journal: Journal) -> None:
    async def only(run: Run) -> None:
        assert run.check("viability", 70).passed  # the limit is inclusive

    protocol = one_step(only, checks={"viability": Spec(min=70)})
    outcome = await Runner(journal, clock_origin=ORIGIN).run(protocol, Line("t", {}))
    assert outcome.exit_status == "complete"
    assert kinds(journal, outcome.run_id, "deviation") == []


async def test_a_check_without_a_spec_fails_the_step_naming_it(journal: Journal) -> None:
    async def only(run: Run) -> None:
        run.check("undeclared", 1)

    outcome = await Runner(journal, clock_origin=ORIGIN).run(one_step(only), Line("t", {}))
    assert outcome.exit_status == "failed" and "'undeclared' has no spec" in outcome.reason


async def test_identity_mismatch_aborts(journal: Journal) -> None:
    async def only(run: Run) -> None:
        run.identity.expect("W000000000001", "W000000000002")

    outcome = await Runner(journal, clock_origin=ORIGIN).run(one_step(only), Line("t", {}))
    assert outcome.exit_status == "aborted" and outcome.state is State.ABORTED
    assert "mismatch" in kinds(journal, outcome.run_id, "deviation")[0].description


async def test_step_error_is_recorded_and_fails_the_run(journal: Journal) -> None:
    async def only(run: Run, probe: Probe) -> None:
        await probe.break_down()

    outcome = await Runner(journal, clock_origin=ORIGIN).run(
        one_step(only), Line("t", {"probe": Probe()})
    )
    assert outcome.exit_status == "failed" and outcome.state is State.ABORTED
    assert "probe broke" in outcome.reason
    (response,) = kinds(journal, outcome.run_id, "instrument_response")
    assert response.ok is False and response.error.type == "RuntimeError"
    (failed,) = kinds(journal, outcome.run_id, "step_failed")
    assert failed.step == "only"
    assert kinds(journal, outcome.run_id, "alarm")[0].severity == "critical"


async def test_instrument_boundary_records_commands_queries_and_streams(journal: Journal) -> None:
    async def only(run: Run, valve: Valve, probe: Probe) -> None:
        await valve.open()
        assert await probe.read() == 5.0
        seen = [value async for value in probe.readings(3)]
        assert seen == [5.0, 6.0, 7.0]

    outcome = await Runner(journal, clock_origin=ORIGIN).run(
        one_step(only), Line("t", {"valve": Valve(), "probe": Probe()})
    )
    assert outcome.exit_status == "complete"
    records = journal.records(outcome.run_id)
    io = [
        (r.kind.value, r.payload.method)
        for r in records
        if isinstance(r.payload, rec.InstrumentCommand | rec.InstrumentResponse | rec.Reading)
    ]
    assert io == [
        ("instrument_command", "open"),
        ("instrument_response", "open"),
        ("reading", "read"),
        ("reading", "readings"),
        ("reading", "readings"),
        ("reading", "readings"),
    ]
    command_record = next(r for r in records if r.kind == "instrument_command")
    response = next(r for r in records if r.kind == "instrument_response")
    assert response.payload.command_seq == command_record.seq
    assert response.payload.duration_s == pytest.approx(1.0)
    started = kinds(journal, outcome.run_id, "run_started")[0]
    assert started.instruments["probe"].model_dump() == {
        "interface": "Probe",
        "vendor": "test",
        "model": "P",
        "serial": "P-1",
        "firmware": "2",
        "adapter": "in-process",
    }


async def test_max_duration_raises_a_deviation_and_holds(journal: Journal) -> None:
    valve = Valve()

    async def only(run: Run, valve: Valve) -> None:
        await run.sleep(hours=3)
        await valve.open()

    protocol = one_step(only, max_duration_h=2)
    ex = Runner(journal, clock_origin=ORIGIN).prepare(protocol, Line("t", {"valve": valve}))
    async with anyio.create_task_group() as tg:
        tg.start_soon(ex.execute)
        await anyio.sleep(2.5 * 3600)
        assert ex.state is State.HOLDING  # the step keeps going; no new command starts
        await anyio.sleep(3600)
        assert ex.state is State.HELD and valve.opened == 0
        ex.command("Abort", by="qa")
    (deviation,) = kinds(journal, ex.run_id, "deviation")
    assert deviation.check == "max duration" and "2 h" in deviation.description


async def test_max_hold_between_steps_is_a_deviation(journal: Journal) -> None:
    protocol = Protocol("two-steps", version="1")

    @protocol.step(max_hold_h=1)
    async def first(run: Run) -> None:
        run.check("x", 0, Spec(min=1))  # fails: hold before the next step

    @protocol.step
    async def second(run: Run) -> None:
        pass

    ex = Runner(journal, clock_origin=ORIGIN).prepare(protocol, Line("t", {}))
    async with anyio.create_task_group() as tg:
        tg.start_soon(ex.execute)
        await anyio.sleep(2 * 3600)
        assert ex.state is State.HELD
        ex.command("Restart", by="sam", reason="deviation assessed", approval=supervisor_approval())
    assert ex.state is State.COMPLETE
    checks = [d.check for d in kinds(journal, ex.run_id, "deviation")]
    assert checks == ["x", "max hold"]


async def test_twelve_virtual_days_run_through(journal: Journal) -> None:
    async def only(run: Run, probe: Probe) -> None:
        for _minute in range(12 * 24 * 60):
            await run.sleep(minutes=1)
        await probe.read()

    runner = Runner(journal, clock_origin=ORIGIN)
    outcome = await runner.run(one_step(only), Line("t", {"probe": Probe()}))
    assert outcome.exit_status == "complete"
    records = journal.records(outcome.run_id)
    elapsed_s = records[-1].process_time_s - records[0].process_time_s
    assert elapsed_s == pytest.approx(12 * 86400)
    assert records[0].process_time_s == ORIGIN.timestamp()


async def test_concurrent_runs_do_not_disturb_each_other(journal: Journal) -> None:
    async def good(run: Run, probe: Probe) -> None:
        await run.sleep(hours=5)
        await probe.read()

    async def bad(run: Run, probe: Probe) -> None:
        await run.sleep(hours=1)
        await probe.break_down()

    runner = Runner(journal, clock_origin=ORIGIN)
    outcomes = {}

    async def one(index: int) -> None:
        protocol = one_step(bad if index == 3 else good)
        outcome = await runner.run(protocol, Line(f"line{index}", {"probe": Probe()}))
        outcomes[index] = outcome

    async with anyio.create_task_group() as tg:
        for index in range(8):
            tg.start_soon(one, index)
    assert outcomes[3].exit_status == "failed"
    assert all(o.exit_status == "complete" for i, o in outcomes.items() if i != 3)
    for outcome in outcomes.values():
        assert verify_run(journal, outcome.run_id).intact


async def test_bad_parameters_write_nothing(journal: Journal) -> None:
    class P(Params):
        days: int = 7

    protocol = Protocol("p", version="1", params=P)

    @protocol.step
    async def only(run: Run) -> None:
        pass

    runner = Runner(journal, clock_origin=ORIGIN)
    with pytest.raises(ParameterError, match="unknown parameter 'weeks'"):
        runner.prepare(protocol, Line("t", {}), {"weeks": 1})
    with pytest.raises(ParameterError, match="'days'"):
        runner.prepare(protocol, Line("t", {}), {"days": "many"})
    assert journal.runs() == []


async def test_missing_equipment_writes_nothing(journal: Journal) -> None:
    async def only(run: Run, valve: Valve, probe: Probe) -> None:
        pass

    runner = Runner(journal, clock_origin=ORIGIN)
    with pytest.raises(EquipmentError) as caught:
        runner.prepare(one_step(only), Line("t", {"probe": Valve()}))
    message = str(caught.value)
    assert "missing 'valve' (Valve)" in message and "'probe' is a Valve, not a Probe" in message
    assert journal.runs() == []


def test_protocol_definition_errors_name_the_step() -> None:
    protocol = Protocol("p", version="1")

    def not_async(run: Run) -> None:
        pass

    with pytest.raises(ProtocolDefinitionError, match="'not_async': a step must be 'async def'"):
        protocol.step(not_async)

    async def untyped(run: Run, thing) -> None:  # type: ignore[no-untyped-def]
        pass

    with pytest.raises(ProtocolDefinitionError, match="parameter 'thing' must be annotated"):
        protocol.step(untyped)

    async def once(run: Run) -> None:
        pass

    protocol.step(once)
    with pytest.raises(ProtocolDefinitionError, match="'once' is defined twice"):
        protocol.step(once)


async def test_a_step_typed_with_its_protocols_params_runs(journal: Journal) -> None:
    """``run: Run[DoseParams]`` (a string here, naming a class local to this test) is for
    the type checker: the runner resolves only the equipment annotations."""

    class DoseParams(Params):
        dose_ml: float = 2.5

    protocol = Protocol("typed", version="1", params=DoseParams)
    seen: list[float] = []

    @protocol.step
    async def dose(run: Run[DoseParams], probe: Probe) -> None:
        seen.append(run.params.dose_ml + await probe.read())

    assert protocol.steps[0].equipment == {"probe": Probe}
    outcome = await Runner(journal, clock_origin=ORIGIN).run(
        protocol, Line("t", {"probe": Probe()}), {"dose_ml": 1.0}
    )
    assert outcome.exit_status == "complete" and seen == [6.0]


async def test_a_failing_observer_never_disturbs_the_run(journal: Journal) -> None:
    def broken_display(kind: object, payload: object, now: float) -> None:
        raise BrokenPipeError("display went away")

    async def only(run: Run, probe: Probe) -> None:
        await probe.read()

    runner = Runner(journal, clock_origin=ORIGIN)
    runner.observers.append(broken_display)
    outcome = await runner.run(one_step(only), Line("t", {"probe": Probe()}))
    assert outcome.exit_status == "complete"


class Witness(Instrument):
    """Looks into the journal file, from another connection, while it acts."""

    interface_name = "Witness"

    def __init__(self, db: Location) -> None:
        super().__init__(InstrumentIdentity(vendor="t", model="W", serial="W-1", firmware="1"))
        self.db = db
        self.seen: list[tuple[str, str]] = []

    @command
    async def dispense(self, volume_ml: float) -> float:
        with closing(raw_connect(self.db)) as other:  # committed: what a crash would leave
            self.seen = other.execute(
                "SELECT kind, body FROM records ORDER BY seq DESC LIMIT 1"
            ).fetchall()
        return volume_ml


async def test_intent_is_on_disk_before_the_instrument_acts(
    db_location: Location, tmp_path: Path
) -> None:
    db = db_location
    witness = Witness(db)

    async def only(run: Run, witness: Witness) -> None:
        await witness.dispense(12.5)

    with Journal(db) as journal:
        outcome = await Runner(journal, clock_origin=ORIGIN).run(
            one_step(only), Line("t", {"witness": witness})
        )
    assert outcome.exit_status == "complete"
    ((kind, body),) = witness.seen
    assert kind == "instrument_command"
    assert '"volume_ml":12.5' in body and '"method":"dispense"' in body


async def test_a_batch_value_that_would_not_read_back_as_itself_is_refused(
    journal: Journal,
) -> None:
    """NaN would come back as "NaN", a tuple as a list: refused, naming step and value."""

    async def only(run: Run) -> None:
        run.set_value("viability", float("nan"))

    outcome = await Runner(journal, clock_origin=ORIGIN).run(one_step(only), Line("t", {}))
    assert outcome.exit_status == "failed"
    assert "step 'only': batch value 'viability': value is nan; record a finite number" in (
        outcome.reason
    )
    assert not [r for r in journal.records(outcome.run_id) if r.kind == "batch_value"]


async def test_a_reproducible_run_id_does_not_summarise_every_run(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run ids in O(1): the runs are counted once, never summarised per new run."""

    async def only(run: Run) -> None:
        pass

    runner = Runner(journal, clock_origin=ORIGIN, reproducible=True)
    first = runner.prepare(one_step(only), Line("t", {}), seed=1)
    monkeypatch.setattr(Journal, "runs", lambda self: pytest.fail("runs() summarised"))
    second = runner.prepare(one_step(only), Line("t", {}), seed=1)
    assert first.run_id != second.run_id  # the count moved on, as summarising did
    assert journal.run_count() == 2
