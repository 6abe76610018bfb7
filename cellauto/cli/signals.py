"""Ctrl-C and SIGTERM during ``cellauto run``/``resume``: the run aborts in order."""

from __future__ import annotations

import logging
import signal
import sys

import anyio

from cellauto.errors import StateCommandError
from cellauto.protocols import Command
from cellauto.protocols.execution import Execution
from cellauto.protocols.states import ACTIVE_STATES

__all__ = ["abort_on_signal"]

logger = logging.getLogger(__name__)


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
