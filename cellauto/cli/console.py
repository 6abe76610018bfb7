"""The operator console of ``cellauto run``: answers a Held run and turns signals into Abort.

Neither task may ever disturb the run it serves: every failure here is reported
and the run goes on (or, for a Held run without an answer, is stopped in order).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Iterator
from typing import Any

import anyio

from cellauto.clock import VirtualTimeEventLoop
from cellauto.errors import StateCommandError
from cellauto.protocols import Command, State
from cellauto.protocols.execution import Execution
from cellauto.protocols.states import ACTIVE_STATES
from cellauto.records import RecordKind

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


class HoldConsole:
    """Observer that answers each Held state: asks the operator, or applies --on-hold."""

    def __init__(self, mode: str, operator: str) -> None:
        self.mode = mode
        self.operator = operator
        self.execution: Execution | None = None
        self.task_group: anyio.abc.TaskGroup | None = None

    def __call__(self, kind: RecordKind, payload: dict[str, Any], now_s: float) -> None:
        if kind is RecordKind.STATE_CHANGE and payload["to_state"] == State.HELD.value:
            assert self.task_group is not None
            self.task_group.start_soon(self._answer)

    async def _answer(self) -> None:
        execution = self.execution
        assert execution is not None
        try:
            command, by, reason = await self._decide(execution)
            if execution.state is State.HELD:
                execution.command(command, by=by, reason=reason)
        except StateCommandError as exc:  # the state moved on meanwhile; nothing to do
            logger.info("hold answer not applied: %s", exc)
        except Exception:
            logger.exception("the hold console failed; the run stays Held")

    async def _decide(self, execution: Execution) -> tuple[Command, str, str]:
        if self.mode != "prompt":
            return (
                Command(self.mode.capitalize()),
                f"cli --on-hold {self.mode}",
                "unattended run: --on-hold policy",
            )
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
        raise StateCommandError("answer", execution.state.value, [])


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
