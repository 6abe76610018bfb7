"""The ISA-88 procedural state machine (states, commands and allowed transitions).

Commands move a run between states; the acting states (Holding, Restarting,
Stopping, Aborting) finish by themselves when their logic is done, and Complete is
reached only by the procedure finishing, never by command.
"""

from __future__ import annotations

from enum import StrEnum

from cellauto.errors import StateCommandError

__all__ = [
    "ACTIVE_STATES",
    "AUTOMATIC",
    "COMMANDS",
    "FINAL_STATES",
    "Command",
    "State",
    "allowed_commands",
    "next_state",
]


class State(StrEnum):
    IDLE = "Idle"
    RUNNING = "Running"
    HOLDING = "Holding"
    HELD = "Held"
    RESTARTING = "Restarting"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    ABORTING = "Aborting"
    ABORTED = "Aborted"
    COMPLETE = "Complete"


class Command(StrEnum):
    START = "Start"
    HOLD = "Hold"
    RESTART = "Restart"
    STOP = "Stop"
    ABORT = "Abort"
    RESET = "Reset"


#: (state, command) -> new state. Anything absent is refused.
COMMANDS: dict[tuple[State, Command], State] = {
    (State.IDLE, Command.START): State.RUNNING,
    (State.RUNNING, Command.HOLD): State.HOLDING,
    (State.RESTARTING, Command.HOLD): State.HOLDING,
    (State.HELD, Command.RESTART): State.RESTARTING,
    (State.COMPLETE, Command.RESET): State.IDLE,
    (State.STOPPED, Command.RESET): State.IDLE,
    (State.ABORTED, Command.RESET): State.IDLE,
}
for _state in (State.RUNNING, State.HOLDING, State.HELD, State.RESTARTING):
    COMMANDS[(_state, Command.STOP)] = State.STOPPING
for _state in (State.RUNNING, State.HOLDING, State.HELD, State.RESTARTING, State.STOPPING):
    COMMANDS[(_state, Command.ABORT)] = State.ABORTING

#: Acting states and where their logic ends up (Running -> Complete when the procedure ends).
AUTOMATIC: dict[State, State] = {
    State.RUNNING: State.COMPLETE,
    State.HOLDING: State.HELD,
    State.RESTARTING: State.RUNNING,
    State.STOPPING: State.STOPPED,
    State.ABORTING: State.ABORTED,
}

#: States in which the procedure is under way (Stop/Abort apply here).
ACTIVE_STATES = frozenset(
    {State.RUNNING, State.HOLDING, State.HELD, State.RESTARTING, State.STOPPING}
)
FINAL_STATES = frozenset({State.COMPLETE, State.STOPPED, State.ABORTED})


def allowed_commands(state: State) -> list[Command]:
    """Commands accepted in ``state``, in declaration order."""
    return [cmd for cmd in Command if (state, cmd) in COMMANDS]


def next_state(state: State, command: Command) -> State:
    """The state ``command`` leads to from ``state``; refuses with StateCommandError."""
    try:
        return COMMANDS[(state, command)]
    except KeyError:
        raise StateCommandError(
            command.value, state.value, [c.value for c in allowed_commands(state)]
        ) from None
