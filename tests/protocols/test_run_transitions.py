"""Every ISA-88 command in every state, applied to a real run, journaled either way."""

from __future__ import annotations

import anyio
import pytest

from cellauto.errors import StateCommandError
from cellauto.protocols import Command, State
from cellauto.records import Journal, verify_run
from tests.protocols.harness import Harness
from tests.protocols.test_states import EXPECTED

pytestmark = pytest.mark.anyio

REACHABLE = [
    State.IDLE,
    State.RUNNING,
    State.HOLDING,
    State.HELD,
    State.RESTARTING,
    State.STOPPING,
    State.ABORTING,
    State.COMPLETE,
    State.STOPPED,
    State.ABORTED,
]
CASES = [(state, command) for state in REACHABLE for command in Command]


def _expected(state: State, command: Command) -> State | None:
    if state is State.IDLE and command is Command.START:
        return None  # a run that was reset is over; a new batch is a new run
    return EXPECTED.get((state, command))


@pytest.mark.parametrize(("state", "command"), CASES, ids=[f"{s}-{c}" for s, c in CASES])
async def test_command_in_state(journal: Journal, state: State, command: Command) -> None:
    harness = Harness(journal)
    ex = harness.execution
    async with anyio.create_task_group() as tg:
        await harness.drive_to(tg, state)
        before = len(journal.records(ex.run_id))
        expected = _expected(state, command)
        if expected is None:
            with pytest.raises(StateCommandError) as caught:
                ex.command(command, by="test")
            assert state.value in str(caught.value) and command.value in str(caught.value)
            assert ex.state is state
        else:
            assert ex.command(command, by="test") is expected
        journal.flush()
        commands = [r for r in journal.records(ex.run_id)[before:] if r.kind == "command"]
        assert commands[0].payload.command == command.value
        assert commands[0].payload.accepted is (expected is not None)
        # let the run finish whatever it was doing, then close it
        harness.gate.set()
        await harness.settle()
        if ex.state in (State.HELD, State.HOLDING, State.RESTARTING):
            ex.command("Abort", by="test")
        await harness.settle()
        tg.cancel_scope.cancel()
    ex.close()  # the seal: a run that ended without one does not verify
    assert verify_run(journal, ex.run_id).intact


async def test_hold_waits_for_the_next_command_and_restart_resumes(journal: Journal) -> None:
    harness = Harness(journal)
    ex = harness.execution
    async with anyio.create_task_group() as tg:
        await harness.drive_to(tg, State.HELD)
        assert harness.valve.opened == 0  # the held command was not sent
        ex.command("Restart", by="operator")
        await harness.settle()
    assert harness.outcome is not None and harness.outcome.exit_status == "complete"
    assert harness.valve.opened == 1
    assert harness.states() == ["Running", "Holding", "Held", "Restarting", "Running", "Complete"]


async def test_stop_ends_at_the_next_hold_point(journal: Journal) -> None:
    harness = Harness(journal)
    async with anyio.create_task_group() as tg:
        await harness.drive_to(tg, State.STOPPED)
    assert harness.outcome is not None and harness.outcome.exit_status == "stopped"
    assert harness.valve.opened == 0
    assert harness.states() == ["Running", "Stopping", "Stopped"]


async def test_abort_cancels_the_step_at_once(journal: Journal) -> None:
    harness = Harness(journal)
    async with anyio.create_task_group() as tg:
        await harness.drive_to(tg, State.ABORTED)
    assert harness.outcome is not None and harness.outcome.exit_status == "aborted"
    kinds = [r.kind for r in journal.records(harness.execution.run_id)]
    assert "step_failed" in kinds and kinds[-1] == "run_ended"
