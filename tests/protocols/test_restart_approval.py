"""Restart after a deviation needs a supervisor's approval and a reason (design §5.5)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from cellauto import Protocol, Run, Spec
from cellauto.errors import PermissionRefusedError
from cellauto.instruments import Line
from cellauto.protocols import Runner, State
from cellauto.protocols.execution import Execution
from cellauto.protocols.resume import plan_resume
from cellauto.protocols.tasks import TaskAnswer
from cellauto.records import Journal
from cellauto.records import payloads as rec
from cellauto.records.refs import Meaning, RecordRef, SignatureShown
from cellauto.records.wording import describe
from cellauto.sim import simulate
from tests.protocols.harness import ORIGIN, Harness, Valve, supervisor_approval


def _protocol() -> Protocol:
    protocol = Protocol("held-by-deviation", version="1")

    @protocol.step
    async def only(run: Run, valve: Valve) -> None:
        run.check("pressure", 9.0, Spec(max=5, unit="bar"))
        await valve.open()

    return protocol


class Site:
    """An authority that knows one supervisor."""

    def refusal(self, answer: TaskAnswer, task: rec.TaskOpened, performer: str | None) -> None:
        return None

    def approval_refusal(
        self, approval: SignatureShown, permission: str, *, signs: RecordRef | None = None
    ) -> str | None:
        if approval.signer == "sam":
            return None
        return f"{approval.signer} lacks the permission {permission}"


def _held(journal: Journal, **prepare: Any) -> Execution:
    runner = Runner(journal, clock_origin=ORIGIN)
    return runner.prepare(_protocol(), Line("plant", {"valve": Valve()}), **prepare)


def _commands(journal: Journal, execution: Execution) -> list[rec.Command]:
    records = journal.records(execution.run_id, {rec.Command.kind})
    return [r.payload for r in records if isinstance(r.payload, rec.Command)]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("approval", "reason", "refusal"),
    [
        (None, "sensor re-zeroed", "needs a supervisor's approval"),
        (supervisor_approval(), "", "needs a reason"),
        (
            supervisor_approval().model_copy(update={"meaning": Meaning.PERFORMED}),
            "sensor re-zeroed",
            "meaning 'approved'",
        ),
        (
            supervisor_approval().model_copy(update={"simulated": True}),
            "sensor re-zeroed",
            "is simulated",
        ),
        (supervisor_approval("olga"), "sensor re-zeroed", "olga lacks the permission"),
    ],
)
async def test_restart_after_deviation_without_a_valid_approval_is_refused_and_journaled(
    journal: Journal, approval: SignatureShown | None, reason: str, refusal: str
) -> None:
    execution = _held(journal, authority=Site())
    async with anyio.create_task_group() as tg:
        tg.start_soon(execution.execute)
        await anyio.sleep(10)
        assert execution.state is State.HELD
        with pytest.raises(PermissionRefusedError, match=refusal):
            execution.command("Restart", by="sam", reason=reason, approval=approval)
        assert execution.state is State.HELD
        execution.command(
            "Restart", by="sam", reason="sensor re-zeroed", approval=supervisor_approval()
        )
    assert execution.state is State.COMPLETE
    restarts = [c for c in _commands(journal, execution) if c.command == "Restart"]
    assert [c.accepted for c in restarts] == [False, True]
    assert refusal in (restarts[0].refusal or "")
    assert restarts[1].signature == supervisor_approval()


@pytest.mark.anyio
async def test_restart_after_an_operators_hold_needs_no_approval(journal: Journal) -> None:
    harness = Harness(journal)
    async with anyio.create_task_group() as tg:
        await harness.drive_to(tg, State.HELD)
        harness.execution.command("Restart", by="alice")
    assert harness.execution.state is State.COMPLETE


def test_in_simulation_the_simulated_supervisor_approves() -> None:
    protocol = Protocol("sim-held", version="1")

    @protocol.step
    async def only(run: Run) -> None:
        run.check("pressure", 9.0, Spec(max=5, unit="bar"))
        await run.hold_point()

    result = simulate(protocol, on_hold="restart", patient="typical")
    assert result.exit_status == "complete"
    (restart,) = [c for c in result.of_kind(rec.Command) if c.command == "Restart"]
    assert restart.signature is not None
    assert (restart.signature.signer, restart.signature.meaning) == (
        "sim:supervisor",
        Meaning.APPROVED,
    )
    assert restart.signature.simulated
    (record,) = [r for r in result.records if r.payload == restart]
    text = describe(record)
    assert text is not None and text.endswith("[SIMULATED OPERATOR]")


@pytest.mark.anyio
async def test_the_deviation_a_run_holds_for_survives_a_controller_crash(
    journal: Journal,
) -> None:
    execution = _held(journal)
    async with anyio.create_task_group() as tg:
        tg.start_soon(execution.execute)
        await anyio.sleep(10)
        journal.flush()
        plan = plan_resume(journal.records(execution.run_id))
        tg.cancel_scope.cancel()
    (deviation,) = journal.records(execution.run_id, {rec.Deviation.kind})
    assert plan.hold_cause is not None
    assert (plan.hold_cause.seq, plan.hold_cause.hash) == (deviation.seq, deviation.hash)
