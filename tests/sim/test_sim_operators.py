"""Simulated operators: who they are, what they enter, and where they are refused."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from cellauto import Protocol, Run, Spec
from cellauto.errors import BadInputError
from cellauto.instruments import Line
from cellauto.protocols import Runner
from cellauto.protocols.tasks import OfferedTask, TaskAnswer, TaskBoard
from cellauto.records import Journal
from cellauto.records import payloads as rec
from cellauto.records.backend import Location
from cellauto.records.refs import Meaning, SignatureShown
from cellauto.sim import simulate
from cellauto.sim.batches import simulate_batches
from cellauto.sim.operators import Answer, SimPerson, SimulatedOperators
from tests.protocols.harness import ORIGIN, Valve


def _protocol(body: Any) -> Protocol:
    protocol = Protocol("sim-people", version="1")
    protocol.step(body)
    return protocol


async def _steps(run: Run) -> None:
    await run.confirm("connect bag", instruction="Weld.")
    await run.enter(
        "bag weight",
        type=float,
        unit="g",
        spec=Spec(min=70, max=90),
        instruction="Weigh.",
        verify=True,
    )


def test_by_default_simulated_operators_answer_everything() -> None:
    result = simulate(_protocol(_steps), patient="typical")
    assert result.exit_status == "complete"
    assert [t.name for t in result.tasks] == ["connect bag", "bag weight"]
    assert [s.signer for s in result.signatures] == [
        "sim:operator-a",
        "sim:operator-a",
        "sim:operator-b",
    ]
    assert all(s.simulated and s.site is None for s in result.signatures)
    assert result.of_kind(rec.RunStarted)[0].operators == "simulated"


def test_a_seeded_run_with_operator_tasks_is_byte_identical(
    db_location_factory: Callable[[], Location],
) -> None:
    def bodies(db: Location) -> list[tuple[str, str]]:
        simulate(_protocol(_steps), seed=5, db=db, patient="typical")
        with Journal(db, create=False) as journal:
            (summary,) = journal.runs()
            return [(r.hash, r.payload.model_dump_json()) for r in journal.records(summary.run_id)]

    assert bodies(db_location_factory()) == bodies(db_location_factory())


def test_value_comes_from_script_then_sim_then_expect_then_spec_midpoint() -> None:
    async def entries(run: Run) -> None:
        values = [
            await run.enter(
                "scripted", type=float, unit="g", spec=Spec(min=0, max=10), instruction="a", sim=3.0
            ),
            await run.enter(
                "from sim",
                type=float,
                unit="g",
                spec=Spec(min=0, max=10),
                instruction="b",
                sim=lambda world: float(world.seed),
            ),
            await run.enter("expected", type=str, expect="LOT-1", instruction="c"),
            await run.enter(
                "midpoint", type=int, unit="bags", spec=Spec(min=2, max=4), instruction="d"
            ),
            await run.enter("minimum", type=float, unit="%", spec=Spec(min=70), instruction="e"),
        ]
        run.set_checkpoint("values", values)

    result = simulate(
        _protocol(entries), seed=7, operators={"scripted": Answer(value=9.5)}, patient="typical"
    )
    assert result.exit_status == "complete"
    assert result.checkpoints["values"] == [9.5, 7.0, "LOT-1", 3, 70.0]


def test_no_value_to_enter_raises_an_alarm_naming_the_script_and_the_timeout_applies() -> None:
    async def free_text(run: Run) -> None:
        await run.enter("remark", type=str, instruction="Any remark?", timeout_h=1)

    result = simulate(_protocol(free_text), patient="typical")
    assert result.exit_status == "stopped"
    (alarm,) = [a for a in result.alarms if "simulated operators" in a.message]
    assert "simulate(operators={'remark': Answer(value=...)})" in alarm.message
    assert result.deviations[0].check == "remark: no answer within 1 h"


def test_keyed_script_entries_and_delays() -> None:
    async def daily(run: Run) -> None:
        for day in (1, 2):
            await run.confirm("inspect", key=f"day {day}", instruction="Look.")

    script = {"inspect[day 2]": Answer(by="sim:operator-b", after_min=30)}
    result = simulate(_protocol(daily), operators=script, patient="typical")
    assert [s.signer for s in result.signatures] == ["sim:operator-a", "sim:operator-b"]
    assert result.duration_h == pytest.approx((5 + 30) / 60)


def test_simulated_people_must_have_reserved_names() -> None:
    with pytest.raises(ValueError, match="start with 'sim:'"):
        SimulatedOperators(people=[SimPerson(name="alice", printed_name="A", roles=["operator"])])
    with pytest.raises(ValueError, match="names 'sim:nobody'"):
        SimulatedOperators({"x": Answer(by="sim:nobody")})


@pytest.mark.anyio
async def test_refused_on_real_line(db_location: Location, tmp_path: Path) -> None:
    with Journal(db_location) as journal:
        runner = Runner(journal, clock_origin=ORIGIN)
        line = Line("plant", {"valve": Valve()})  # not simulated
        protocol = Protocol("real", version="1")

        @protocol.step
        async def open_valve(run: Run, valve: Valve) -> None:
            await valve.open()

        operators = SimulatedOperators()
        with pytest.raises(BadInputError, match="never by simulated operators"):
            runner.prepare(protocol, line, answerers=[operators])
        with pytest.raises(BadInputError, match="never by simulated operators"):
            runner.prepare(protocol, line, operators="simulated")
        assert journal.runs() == []  # nothing written
        execution = runner.prepare(protocol, line)
        assert execution.tasks.operators == "people"


@pytest.mark.anyio
async def test_a_rehearsal_served_by_another_process_takes_them(
    db_location: Location, tmp_path: Path
) -> None:
    with Journal(db_location) as journal:
        runner = Runner(journal, clock_origin=ORIGIN)
        # instruments reached over the wire from `cellauto sim serve`: not in-process, but
        # a simulation all the same (a line file with a [simulation] table)
        line = Line("rehearsal", {"valve": Valve()}, rehearsal=True)
        protocol = Protocol("rehearsed", version="1")

        @protocol.step
        async def open_valve(run: Run, valve: Valve) -> None:
            await valve.open()

        execution = runner.prepare(protocol, line, answerers=[SimulatedOperators()])
        assert execution.tasks.operators == "simulated"
        assert runner.prepare(protocol, line).tasks.operators == "simulated"


def test_simulate_batches_passes_operators_through(db_location: Location, tmp_path: Path) -> None:
    script = {"bag weight": Answer(value=95.0)}
    batches = simulate_batches(_protocol(_steps), range(2), db=db_location, operators=script)
    assert batches.statuses == {"stopped": 2}  # out of spec: deviation, hold, on_hold=stop
    with Journal(db_location, create=False) as journal:
        for summary in journal.runs():
            answered = journal.records(summary.run_id, {rec.TaskAnswered.kind})
            assert [r.payload.value for r in answered][-1] == 95.0


@pytest.mark.anyio
async def test_a_simulated_line_without_answerers_gets_simulated_operators(
    db_location: Location, tmp_path: Path
) -> None:
    with Journal(db_location) as journal:
        runner = Runner(journal, clock_origin=ORIGIN)
        protocol = Protocol("cli-like", version="1")

        @protocol.step
        async def connect(run: Run, valve: Valve) -> None:
            await run.confirm("connect bag", instruction="Weld.")
            await valve.open()

        line = Line("sim", {"valve": Valve()}, simulated=True)
        execution = runner.prepare(protocol, line)  # as `cellauto run --sim` does
        assert [type(a).__name__ for a in execution.tasks.answerers] == ["SimulatedOperators"]
        outcome = await execution.execute()
        assert outcome.exit_status == "complete"
        answered = journal.records(execution.run_id, {rec.TaskAnswered.kind})
        assert [r.payload.signature.signer for r in answered] == ["sim:operator-a"]


class Slow:
    """A second answerer, slower than the simulated operators (a person on their way)."""

    def __init__(self) -> None:
        self.delivered = 0

    def offer(self, task: OfferedTask, board: TaskBoard) -> None:
        if task.phase == "perform":
            board.start_soon(self._answer, task, board)

    async def _answer(self, task: OfferedTask, board: TaskBoard) -> None:
        await anyio.sleep(30 * 60)
        self.delivered += 1
        signature = SignatureShown(
            signer="sim:operator-b",
            printed_name="B",
            meaning=Meaning.PERFORMED,
            signed_at=ORIGIN,
            time_zone="UTC",
            utc_offset="+00:00",
            simulated=True,
        )
        board.deliver(
            TaskAnswer(
                task_id=task.opened.task_id,
                run_id=task.run_id,
                phase="perform",
                value=80.0,
                signature=signature,
                simulated=True,
            )
        )


@pytest.mark.anyio
async def test_an_answer_under_way_for_a_phase_ends_with_that_phase(
    db_location: Location, tmp_path: Path
) -> None:
    with Journal(db_location) as journal:
        runner = Runner(journal, clock_origin=ORIGIN)
        protocol = Protocol("two answerers", version="1")

        @protocol.step
        async def weigh(run: Run, valve: Valve) -> None:
            await run.enter("w", type=float, unit="g", instruction="Weigh.", verify=True)

        slow = Slow()
        fast = SimulatedOperators({"w": Answer(value=75.0, verify_after_min=60)})
        line = Line("sim", {"valve": Valve()}, simulated=True)
        execution = runner.prepare(protocol, line, answerers=[fast, slow])
        assert (await execution.execute()).exit_status == "complete"
        assert slow.delivered == 0  # the entry was made at 5 min: its errand was called off
        assert not journal.records(execution.run_id, {rec.TaskRejected.kind})
