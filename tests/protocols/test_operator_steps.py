"""Operator steps: run.confirm, run.enter and identity.confirm_label, on the runner's side.

Most tests run a small protocol with :func:`simulate` (simulated operators answer);
those that need to answer at a chosen moment drive a run with a :class:`Desk`, an
answerer the test delivers answers through, as a console or another terminal would.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import anyio
import pytest

from cellauto import Protocol, Run, Spec
from cellauto.errors import BadInputError, TaskNotOpenError
from cellauto.instruments import Line
from cellauto.protocols import Runner, State
from cellauto.protocols.execution import Execution, RunOutcome
from cellauto.protocols.tasks import OfferedTask, TaskAnswer, TaskBoard, task_id_for
from cellauto.records import Journal
from cellauto.records import payloads as rec
from cellauto.records.models import utc_from_epoch_s
from cellauto.records.refs import Meaning, RecordRef, SignatureShown
from cellauto.sim import simulate
from cellauto.sim.operators import Answer, Silent
from tests.protocols.harness import ORIGIN, Valve

SPEC = Spec(min=70, max=90, unit="g")


def one_step(body: Any, *, resume: str = "operator", name: str = "people") -> Protocol:
    protocol = Protocol(name, version="1")
    protocol.step(resume=resume)(body)
    return protocol


# -- confirm and enter, answered by simulated operators ------------------------------------
async def _confirm_and_weigh(run: Run) -> None:
    done = await run.confirm("connect bag", instruction="Weld the bag to the set.")
    run.set_checkpoint("performed by", done.performed_by.signer)
    await run.enter(
        "bag weight", type=float, unit="g", spec=SPEC, instruction="Weigh the bag.", verify=True
    )


def test_confirm_is_signed_by_the_performer_and_recorded() -> None:
    result = simulate(one_step(_confirm_and_weigh), patient="typical")
    assert result.exit_status == "complete"
    opened = result.task("connect bag")
    assert opened.summary.what == "confirm"
    assert opened.answered_by == "simulated"
    answered = result.of_kind(rec.TaskAnswered)[0]
    assert answered.task_id == opened.task_id and answered.value is None
    assert answered.signature.signer == "sim:operator-a"
    assert answered.signature.meaning is Meaning.PERFORMED
    assert answered.signature.simulated and answered.signature.site is None
    assert result.checkpoints["performed by"] == "sim:operator-a"
    # answered 5 min (process time) after it opened, dated with the run's clock
    assert answered.signature.signed_at == result.records[0].process_time + timedelta(minutes=5)


def test_entry_in_spec_is_verified_checked_and_a_batch_value() -> None:
    result = simulate(one_step(_confirm_and_weigh), patient="typical")
    assert result.check("bag weight").passed and result.check("bag weight").value == 80.0
    assert result.values["bag weight"] == 80.0
    verified = result.of_kind(rec.TaskVerified)
    assert [v.signature.signer for v in verified] == ["sim:operator-b"]
    assert [s.meaning for s in result.signatures] == [
        Meaning.PERFORMED,
        Meaning.PERFORMED,
        Meaning.VERIFIED,
    ]


def test_entry_out_of_spec_is_recorded_as_seen_and_is_a_deviation() -> None:
    result = simulate(
        one_step(_confirm_and_weigh),
        operators={"bag weight": Answer(value=95.0)},
        patient="typical",
    )
    assert result.of_kind(rec.TaskAnswered)[-1].value == 95.0  # never refused at entry
    assert result.values["bag weight"] == 95.0
    assert not result.check("bag weight").passed
    assert [d.check for d in result.deviations] == ["bag weight"]
    assert result.exit_status == "stopped"  # hold policy, answered by on_hold="stop"


@pytest.mark.parametrize(
    ("options", "given", "taken"),
    [
        ({"type": str, "pattern": r"[A-Z]{2}-\d{3}"}, "LN-042", "LN-042"),
        ({"type": str, "choices": ["intact", "leaking"]}, "intact", "intact"),
        ({"type": bool}, "yes", True),
        ({"type": int, "unit": "bags"}, "3", 3),
        ({"type": float, "unit": "g"}, "72.4", 72.4),
    ],
)
def test_entries_of_each_type_are_taken_as_that_type(
    options: dict[str, Any], given: Any, taken: Any
) -> None:
    async def ask(run: Run) -> None:
        run.set_checkpoint("got", await run.enter("entry", instruction="Enter it.", **options))

    result = simulate(one_step(ask), operators={"entry": Answer(value=given)}, patient="typical")
    assert result.exit_status == "complete"
    assert result.checkpoints["got"] == taken
    assert result.values["entry"] == taken


def test_yes_no_with_expect_is_a_check() -> None:
    async def ask(run: Run) -> None:
        await run.enter("bag intact", type=bool, expect=True, instruction="Is the bag intact?")

    good = simulate(one_step(ask), patient="typical")
    assert good.check("bag intact").passed
    bad = simulate(one_step(ask), operators={"bag intact": Answer(value=False)}, patient="typical")
    assert not bad.check("bag intact").passed and bad.exit_status == "stopped"


def test_label_mismatch_is_an_identity_deviation_and_aborts() -> None:
    async def label(run: Run) -> None:
        await run.identity.confirm_label(
            "final product label", expected="W123", instruction="Read the bag's label."
        )

    good = simulate(one_step(label), patient="typical")
    assert good.exit_status == "complete"
    assert [c.passed for c in good.identity_checks] == [True]
    assert len(good.of_kind(rec.TaskVerified)) == 1  # two people read it
    bad = simulate(
        one_step(label), operators={"final product label": Answer(value="W999")}, patient="typical"
    )
    assert bad.exit_status == "aborted"
    assert [c.observed for c in bad.identity_checks] == ["W999"]
    assert "mismatch" in bad.deviations[0].description


# -- verification ---------------------------------------------------------------------------
def test_verifier_rejects_the_entry_and_a_second_attempt_opens() -> None:
    script = {
        "bag weight": [
            Answer(value=7.5, reject=True, reason="decimal point misread"),
            Answer(value=75.0),
        ]
    }
    result = simulate(one_step(_confirm_and_weigh), operators=script, patient="typical")
    assert result.exit_status == "complete"
    attempts = [t for t in result.tasks if t.name == "bag weight"]
    assert [t.attempt for t in attempts] == [1, 2]
    assert attempts[0].task_id != attempts[1].task_id
    rejected = result.of_kind(rec.TaskRejected)
    assert [(r.task_id, r.cause, r.detail) for r in rejected] == [
        (attempts[0].task_id, "rejected", "decimal point misread")
    ]
    assert rejected[0].by is not None and rejected[0].by.meaning is Meaning.REJECTED
    # the void entry stays in the record; only the second is a value and a check
    assert [a.value for a in result.of_kind(rec.TaskAnswered)][1:] == [7.5, 75.0]
    assert [c.value for c in result.checks("bag weight")] == [75.0]


def test_scripted_self_verification_is_rejected() -> None:
    async def weigh(run: Run) -> None:
        await run.enter(
            "bag weight",
            type=float,
            unit="g",
            spec=SPEC,
            instruction="Weigh.",
            verify=True,
            timeout_h=1,
        )

    script = {"bag weight": Answer(by="sim:operator-a", verify_by="sim:operator-a")}
    result = simulate(one_step(weigh), operators=script, patient="typical")
    rejected = result.of_kind(rec.TaskRejected)
    assert [r.cause for r in rejected] == ["self_verification"]
    assert rejected[0].by is not None and rejected[0].by.signer == "sim:operator-a"
    assert not result.of_kind(rec.TaskVerified)
    # nobody else verified: the timeout applied (hold), answered by on_hold="stop"
    assert result.exit_status == "stopped"
    assert result.deviations[0].check == "bag weight: no answer within 1 h"


# -- timeouts -------------------------------------------------------------------------------
def test_timeout_hold_raises_an_alarm_and_a_deviation_and_holds() -> None:
    async def connect(run: Run) -> None:
        await run.confirm("connect bag", instruction="Weld.", timeout_h=2)

    result = simulate(
        one_step(connect), operators={"connect bag": Silent()}, on_hold="stop", patient="typical"
    )
    assert result.exit_status == "stopped"
    assert result.deviations[0].policy.value == "hold"
    assert any(
        a.severity == "major" and "not answered within 2 h" in a.message for a in result.alarms
    )
    assert "Held" in result.states
    withdrawn = result.of_kind(rec.TaskWithdrawn)  # Stop withdrew it
    assert [w.task_id for w in withdrawn] == [result.task("connect bag").task_id]
    assert result.duration_h == pytest.approx(2.0)  # process time from the task's opening


def test_late_answer_after_a_hold_timeout_is_taken_and_marked_late() -> None:
    async def connect(run: Run) -> None:
        await run.confirm("connect bag", instruction="Weld.", timeout_h=1)

    script = {"connect bag": Answer(after_min=90)}
    result = simulate(one_step(connect), operators=script, on_hold="restart", patient="typical")
    # Held at the timeout (1 h), restarted at once; the answer came at 1.5 h
    assert result.exit_status == "complete"
    assert result.states[-4:] == ["Held", "Restarting", "Running", "Complete"]
    answered = result.of_kind(rec.TaskAnswered)
    assert [a.late for a in answered] == [True]
    assert answered[0].signature.signed_at == result.records[0].process_time + timedelta(minutes=90)


def test_timeout_abort_expires_the_task_and_aborts() -> None:
    async def connect(run: Run) -> None:
        await run.confirm("connect bag", instruction="Weld.", timeout_h=0.5, on_timeout="abort")

    result = simulate(one_step(connect), operators={"connect bag": Silent()}, patient="typical")
    assert result.exit_status == "aborted"
    assert [e.policy for e in result.of_kind(rec.TaskExpired)] == ["abort"]
    assert result.deviations[0].policy.value == "abort"
    assert not result.of_kind(rec.TaskWithdrawn)


# -- driven by hand: a desk the test answers through ----------------------------------------
class Desk:
    """An answerer that remembers what it was offered; the test answers through it."""

    def __init__(self) -> None:
        self.offered: list[tuple[str, str]] = []
        self.board: TaskBoard | None = None
        self.changed = anyio.Event()

    def offer(self, task: OfferedTask, board: TaskBoard) -> None:
        self.offered.append((task.opened.task_id, task.phase))
        self.board = board
        self.changed.set()
        self.changed = anyio.Event()

    def answer(
        self,
        task_id: str,
        *,
        value: Any = None,
        who: str = "alice",
        phase: str = "perform",
        meaning: Meaning = Meaning.PERFORMED,
        run_id: str | None = None,
        simulated: bool = False,
    ) -> None:
        assert self.board is not None
        signature = SignatureShown(
            signer=who,
            printed_name=who.title(),
            meaning=meaning,
            signed_at=utc_from_epoch_s(self.board.now_s()),
            time_zone="UTC",
            utc_offset="+00:00",
            simulated=simulated,
        )
        self.board.deliver(
            TaskAnswer(
                task_id=task_id,
                run_id=run_id or self.board.execution.run_id,
                phase="perform" if phase == "perform" else "verify",
                value=value,
                signature=signature,
            )
        )


def _execution(journal: Journal, protocol: Protocol, desk: Desk) -> Execution:
    runner = Runner(journal, clock_origin=ORIGIN)
    return runner.prepare(protocol, Line("bench", {"valve": Valve()}), answerers=[desk])


async def _settle() -> None:
    await anyio.sleep(1)


async def _weigh(run: Run, valve: Valve) -> None:
    await run.enter(
        "bag weight",
        type=float,
        unit="g",
        spec=SPEC,
        instruction="Weigh.",
        timeout_h=1,
        on_timeout="abort",
    )
    await valve.open()


@pytest.mark.anyio
async def test_value_not_of_the_type_is_refused_before_anything_is_signed(journal: Journal) -> None:
    desk = Desk()
    execution = _execution(journal, one_step(_weigh), desk)
    outcome: list[RunOutcome] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: _append(outcome, execution.execute()))
        await _settle()
        task_id = desk.offered[0][0]
        with pytest.raises(BadInputError, match=r"'72,4' is not"):
            desk.answer(task_id, value="72,4")
        assert not journal.records(execution.run_id, {rec.TaskAnswered.kind})
        desk.answer(task_id, value="72.4")
    assert outcome[0].exit_status == "complete"
    assert [
        a.payload.value for a in journal.records(execution.run_id, {rec.TaskAnswered.kind})
    ] == [72.4]


async def _append(into: list[RunOutcome], outcome: Any) -> None:
    into.append(await outcome)


@pytest.mark.anyio
async def test_late_answer_after_abort_timeout_refused(journal: Journal) -> None:
    desk = Desk()
    execution = _execution(journal, one_step(_weigh), desk)
    outcome: list[RunOutcome] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: _append(outcome, execution.execute()))
        await _settle()
        task_id = desk.offered[0][0]
        await anyio.sleep(3600)
        with pytest.raises(TaskNotOpenError, match=f"task {task_id} .* not open \\(expired\\)"):
            desk.answer(task_id, value=80)
    assert outcome[0].exit_status == "aborted"
    assert not journal.records(execution.run_id, {rec.TaskAnswered.kind})


@pytest.mark.anyio
async def test_task_opens_only_at_a_hold_point(journal: Journal) -> None:
    gate = anyio.Event()

    async def gated(run: Run, valve: Valve) -> None:
        await gate.wait()  # e.g. a computation: no hold point in it
        await run.confirm("connect bag", instruction="Weld.")

    desk = Desk()
    execution = _execution(journal, one_step(gated), desk)
    async with anyio.create_task_group() as tg:
        tg.start_soon(execution.execute)
        await _settle()
        execution.command("Hold", by="test")
        gate.set()
        await _settle()
        assert execution.state is State.HELD and desk.offered == []
        assert not journal.records(execution.run_id, {rec.TaskOpened.kind})
        execution.command("Restart", by="test")
        await _settle()
        assert len(desk.offered) == 1
        desk.answer(desk.offered[0][0])
    assert execution.state is State.COMPLETE


@pytest.mark.anyio
async def test_hold_while_waiting_holds_and_the_answer_is_still_taken(journal: Journal) -> None:
    desk = Desk()
    execution = _execution(journal, one_step(_weigh), desk)
    async with anyio.create_task_group() as tg:
        tg.start_soon(execution.execute)
        await _settle()
        execution.command("Hold", by="test")
        await _settle()
        assert execution.state is State.HELD  # waiting for a person is a hold point
        desk.answer(desk.offered[0][0], value=80)  # the person was already at it
        await _settle()
        assert execution.state is State.HELD  # the step goes on only after Restart
        assert journal.records(execution.run_id, {rec.TaskAnswered.kind})
        execution.command("Restart", by="test")
    assert execution.state is State.COMPLETE


@pytest.mark.anyio
async def test_stop_withdraws_the_open_task(journal: Journal) -> None:
    desk = Desk()
    execution = _execution(journal, one_step(_weigh), desk)
    async with anyio.create_task_group() as tg:
        tg.start_soon(execution.execute)
        await _settle()
        task_id = desk.offered[0][0]
        execution.command("Stop", by="test", reason="line cleared")
        await _settle()
        with pytest.raises(TaskNotOpenError, match="withdrawn"):
            desk.answer(task_id, value=80)
    assert execution.state is State.STOPPED
    withdrawn = journal.records(execution.run_id, {rec.TaskWithdrawn.kind})
    assert [(r.payload.task_id, r.payload.why) for r in withdrawn] == [
        (task_id, "Stop by test: line cleared")
    ]


@pytest.mark.anyio
async def test_abort_withdraws_the_open_task(journal: Journal) -> None:
    desk = Desk()
    execution = _execution(journal, one_step(_weigh), desk)
    async with anyio.create_task_group() as tg:
        tg.start_soon(execution.execute)
        await _settle()
        execution.command("Abort", by="test")
    assert execution.state is State.ABORTED
    assert len(journal.records(execution.run_id, {rec.TaskWithdrawn.kind})) == 1


@pytest.mark.anyio
async def test_answer_for_another_run_or_phase_is_rejected_and_the_task_stays_open(
    journal: Journal,
) -> None:
    async def weigh(run: Run, valve: Valve) -> None:
        await run.enter("w", type=float, unit="g", instruction="Weigh.", verify=True)

    desk = Desk()
    execution = _execution(journal, one_step(weigh), desk)
    async with anyio.create_task_group() as tg:
        tg.start_soon(execution.execute)
        await _settle()
        task_id = desk.offered[0][0]
        desk.answer(task_id, value=1.0, run_id="another-run")
        desk.answer(task_id, who="bob", phase="verify", meaning=Meaning.VERIFIED)
        await _settle()
        desk.answer(task_id, value=1.0, who="alice")
        await _settle()
        desk.answer(task_id, who="alice", phase="verify", meaning=Meaning.VERIFIED)
        await _settle()
        desk.answer(task_id, who="bob", phase="verify", meaning=Meaning.VERIFIED)
    causes = [r.payload.cause for r in journal.records(execution.run_id, {rec.TaskRejected.kind})]
    assert causes == ["wrong_run", "wrong_phase", "self_verification"]
    assert execution.state is State.COMPLETE


class OnlyAlice:
    """An authority that lets only alice answer (a site's training and permission check)."""

    def refusal(
        self, answer: TaskAnswer, task: rec.TaskOpened, performer: str | None
    ) -> str | None:
        if answer.signature.signer == "alice":
            return None
        return f"{answer.signature.signer} has no training for {task.name!r}"

    def approval_refusal(
        self, approval: SignatureShown, permission: str, *, signs: RecordRef | None = None
    ) -> str | None:
        return None


@pytest.mark.anyio
async def test_authority_refuses_who_may_not_answer_and_the_task_stays_open(
    journal: Journal,
) -> None:
    desk = Desk()
    runner = Runner(journal, clock_origin=ORIGIN)
    execution = runner.prepare(
        one_step(_weigh), Line("plant", {"valve": Valve()}), answerers=[desk], authority=OnlyAlice()
    )
    assert execution.tasks.operators == "people"
    async with anyio.create_task_group() as tg:
        tg.start_soon(execution.execute)
        await _settle()
        task_id = desk.offered[0][0]
        desk.answer(task_id, value=80, who="mallory")
        await _settle()
        assert execution.state is State.RUNNING
        desk.answer(task_id, value=81, who="alice")
    rejected = [r.payload for r in journal.records(execution.run_id, {rec.TaskRejected.kind})]
    assert [(r.cause, r.detail) for r in rejected] == [
        ("not_eligible", "mallory has no training for 'bag weight'")
    ]
    answered = journal.records(execution.run_id, {rec.TaskAnswered.kind})
    assert [a.payload.value for a in answered] == [81]


@pytest.mark.anyio
async def test_simulated_answer_to_a_run_answered_by_people_is_rejected(journal: Journal) -> None:
    desk = Desk()
    runner = Runner(journal, clock_origin=ORIGIN)
    execution = runner.prepare(
        one_step(_weigh), Line("plant", {"valve": Valve()}), answerers=[desk]
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(execution.execute)
        await _settle()
        task_id = desk.offered[0][0]
        desk.answer(task_id, value=80, who="sim:operator-a", simulated=True)
        desk.answer(task_id, value=80, who="alice")
    rejected = [r.payload for r in journal.records(execution.run_id, {rec.TaskRejected.kind})]
    assert [r.cause for r in rejected] == ["simulated_in_real_run"]


# -- resume after a controller crash ---------------------------------------------------------
async def _connect_then_culture(run: Run) -> None:
    await run.confirm("connect bag", instruction="Weld.")
    await run.sleep(hours=2)


def test_resume_answered_task_is_not_asked_again() -> None:
    result = simulate(
        one_step(_connect_then_culture, resume="rerun"), crashes=[1.0], patient="typical"
    )
    assert result.exit_status == "complete"
    assert len(result.tasks) == 1  # opened once, never asked again
    assert len(result.of_kind(rec.TaskAnswered)) == 1
    assert len(result.of_kind(rec.RunResumed)) == 1


def test_resume_open_task_is_offered_again() -> None:
    # the controller dies 3 min after the task opened, before the 5-min answer
    result = simulate(
        one_step(_connect_then_culture, resume="rerun"), crashes=[0.05], patient="typical"
    )
    assert result.exit_status == "complete"
    assert len(result.tasks) == 1  # re-attached, not opened again
    answered = result.of_kind(rec.TaskAnswered)
    assert len(answered) == 1
    # answered 5 min after it was offered again, after 1 h of downtime
    resumed_at = next(r.process_time for r in result.records if r.kind == "run_resumed")
    assert answered[0].signature.signed_at == resumed_at + timedelta(minutes=5)


def test_resume_entry_gets_its_value_back_and_is_checked_once() -> None:
    async def weigh_then_wait(run: Run) -> None:
        weight = await run.enter(
            "w", type=float, unit="g", spec=SPEC, instruction="Weigh.", verify=True
        )
        run.set_checkpoint("weight seen", weight)
        await run.sleep(hours=2)

    result = simulate(one_step(weigh_then_wait, resume="rerun"), crashes=[1.0], patient="typical")
    assert result.exit_status == "complete"
    assert len(result.checks("w")) == 1 and len(result.tasks) == 1
    assert result.checkpoints["weight seen"] == 80.0


# -- ids and names ---------------------------------------------------------------------------
def test_task_ids_are_deterministic_crockford_base32() -> None:
    first = task_id_for("run-1", "formulate", "bag weight", None, 1)
    assert first == task_id_for("run-1", "formulate", "bag weight", None, 1)
    assert len(first) == 8 and set(first) <= set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
    others = {
        task_id_for("run-2", "formulate", "bag weight", None, 1),
        task_id_for("run-1", "freeze", "bag weight", None, 1),
        task_id_for("run-1", "formulate", "bag", None, 1),
        task_id_for("run-1", "formulate", "bag weight", "day 1", 1),
        task_id_for("run-1", "formulate", "bag weight", None, 2),
    }
    assert first not in others and len(others) == 5
    a, b = (
        simulate(one_step(_confirm_and_weigh), patient="typical"),
        simulate(one_step(_confirm_and_weigh), patient="typical"),
    )
    assert [t.task_id for t in a.tasks] == [t.task_id for t in b.tasks]


def test_duplicate_task_name_in_a_step_is_a_definition_error() -> None:
    async def twice(run: Run) -> None:
        await run.confirm("connect bag", instruction="Weld.")
        await run.confirm("connect bag", instruction="Weld again.")

    result = simulate(one_step(twice), patient="typical")
    assert result.exit_status == "failed"
    assert "ProtocolDefinitionError" in result.outcome.reason
    assert "asks task 'connect bag' twice" in result.outcome.reason


def test_same_name_with_distinct_keys_is_allowed() -> None:
    async def daily(run: Run) -> None:
        for day in (1, 2):
            await run.confirm("inspect bag", key=f"day {day}", instruction="Look at the bag.")

    result = simulate(one_step(daily), patient="typical")
    assert result.exit_status == "complete"
    assert [t.key for t in result.tasks] == ["day 1", "day 2"]


def test_bad_entry_definitions_are_refused_naming_the_step() -> None:
    async def bad(run: Run) -> None:
        await run.enter("w", type=str, instruction="x", spec=SPEC)  # type: ignore[arg-type]

    result = simulate(one_step(bad), patient="typical")
    assert result.exit_status == "failed"
    assert result.outcome.reason.startswith("ProtocolDefinitionError: step 'bad': entry 'w'")
    assert "spec= is for numbers" in result.outcome.reason
