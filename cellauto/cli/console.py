"""The operator console of ``cellauto run``: answers a Held run and turns signals into Abort.

Neither may ever disturb the run it serves: every failure here is reported and the
run goes on (or, for a Held run without an answer, is stopped in order).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Iterator

import anyio

from cellauto.clock import VirtualTimeEventLoop
from cellauto.errors import StateCommandError
from cellauto.protocols import Command, State
from cellauto.protocols.execution import Execution
from cellauto.protocols.responder import HoldResponder
from cellauto.protocols.states import ACTIVE_STATES

__all__ = ["HoldConsole", "abort_on_signal"]

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def _real_time() -> Iterator[None]:
    """While waiting for a person, virtual time must not race ahead."""
    loop = asyncio.get_running_loop()
    if isinstance(loop, VirtualTimeEventLoop):
        with loop.real_time():
            yield
    else:
        yield


class HoldConsole(HoldResponder):
    """Answers each Held state: asks the operator (``prompt``) or applies --on-hold."""

    def __init__(self, mode: str, operator: str) -> None:
        unattended = None if mode == "prompt" else mode.capitalize()
        super().__init__(unattended, by=f"cli --on-hold {mode}", reason="--on-hold policy")
        self.operator = operator

    async def decide(self, execution: Execution) -> tuple[Command, str, str] | None:
        if self.command is not None:
            return await super().decide(execution)
        while execution.state is State.HELD:
            try:
                with _real_time():
                    answer = await anyio.to_thread.run_sync(
                        input, "run is Held — type restart, stop or abort: ", abandon_on_cancel=True
                    )
            except EOFError:
                return Command.STOP, "cli console", "no operator answer (end of input)"
            choice = answer.strip().lower()
            if choice in ("restart", "stop", "abort"):
                return Command(choice.capitalize()), self.operator, "operator at the console"
            print("please type restart, stop or abort", file=sys.stderr)
        return None


async def abort_on_signal(execution: Execution) -> None:
    """Ctrl-C or SIGTERM aborts the run in order: recorded, ended, sealed."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            name = signal.Signals(signum).name
            if execution.state not in ACTIVE_STATES:
                continue
            try:
                execution.command(
                    Command.ABORT,
                    by=f"signal {name}",
                    reason="the controlling process was asked to end",
                )
                print(f"\n{name}: aborting the run (recorded)", file=sys.stderr)
            except StateCommandError as exc:
                logger.info("signal %s not applied: %s", name, exc)
