"""The ISA-88 transition table, pair by pair, against an independent statement of it."""

from __future__ import annotations

import pytest

from cellauto.errors import StateCommandError
from cellauto.protocols.states import Command, State, allowed_commands, next_state

S, C = State, Command

# Written out by hand from PROCESS.md: Start from Idle; Hold from Running and
# Restarting; Restart from Held; Stop and Abort from the active states (Abort also
# while Stopping); Reset from Complete, Stopped, Aborted.
EXPECTED = {
    (S.IDLE, C.START): S.RUNNING,
    (S.RUNNING, C.HOLD): S.HOLDING,
    (S.RUNNING, C.STOP): S.STOPPING,
    (S.RUNNING, C.ABORT): S.ABORTING,
    (S.HOLDING, C.STOP): S.STOPPING,
    (S.HOLDING, C.ABORT): S.ABORTING,
    (S.HELD, C.RESTART): S.RESTARTING,
    (S.HELD, C.STOP): S.STOPPING,
    (S.HELD, C.ABORT): S.ABORTING,
    (S.RESTARTING, C.HOLD): S.HOLDING,
    (S.RESTARTING, C.STOP): S.STOPPING,
    (S.RESTARTING, C.ABORT): S.ABORTING,
    (S.STOPPING, C.ABORT): S.ABORTING,
    (S.COMPLETE, C.RESET): S.IDLE,
    (S.STOPPED, C.RESET): S.IDLE,
    (S.ABORTED, C.RESET): S.IDLE,
}

ALL_PAIRS = [(state, command) for state in State for command in Command]


@pytest.mark.parametrize(("state", "command"), [p for p in ALL_PAIRS if p in EXPECTED])
def test_allowed_transition(state: State, command: Command) -> None:
    assert next_state(state, command) is EXPECTED[(state, command)]
    assert command in allowed_commands(state)


@pytest.mark.parametrize(("state", "command"), [p for p in ALL_PAIRS if p not in EXPECTED])
def test_refused_transition_names_state_and_command(state: State, command: Command) -> None:
    with pytest.raises(StateCommandError) as caught:
        next_state(state, command)
    message = str(caught.value)
    assert repr(command.value) in message and repr(state.value) in message
    assert caught.value.state == state.value and caught.value.command == command.value
    assert command not in allowed_commands(state)


def test_complete_is_never_reached_by_command() -> None:
    assert all(target is not State.COMPLETE for target in EXPECTED.values())
    assert all(next_state(s, c) is not State.COMPLETE for (s, c) in EXPECTED)
