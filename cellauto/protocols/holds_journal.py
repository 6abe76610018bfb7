"""A hold of a shared instrument, and what a run records in its chain about it.

A :class:`Hold` past its declared maximum raises a major alarm on the holding run (a
timer on the run's clock).

``instrument_waited``: a hold that had to wait — for how long, at which position, behind
whom (the holders and the earlier waiters, with their deadlines and whether a holder was
past its declared maximum). ``instrument_released``: how long a hold that waited, was
explicit or went past its maximum held the instrument.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cellauto.protocols.holds_local import NS
from cellauto.protocols.holds_policy import SharedPolicy
from cellauto.records import asset_holds as table
from cellauto.records import payloads as rec

if TYPE_CHECKING:
    from cellauto.protocols.execution import Execution

__all__ = ["Hold", "record_released", "record_waited"]


@dataclass
class Hold:
    """A granted hold of a shared asset by a run (see :func:`acquire`)."""

    execution: Execution
    instrument: str
    policy: SharedPolicy
    ticket: str
    granted_s: float
    max_hold_s: float | None
    waited: bool
    explicit: bool
    overdue: bool = False
    released: bool = False
    _timer: asyncio.TimerHandle | None = None

    @property
    def asset(self) -> str:
        return self.policy.asset

    def _start_timer(self) -> None:
        if self.max_hold_s is None:
            return
        loop = asyncio.get_running_loop()
        # loop seconds are process seconds on every clock (virtual, scaled, real)
        self._timer = loop.call_later(self.max_hold_s, self._past_maximum)

    def _past_maximum(self) -> None:
        self._timer = None
        if self.released:
            return
        self.overdue = True
        step = self.execution.current_step_name
        self.execution.alarm(
            f"{self.instrument} ({self.asset}) held past its maximum of "
            f"{self.max_hold_s:g} s by step {step!r}: runs waiting for it are delayed",
            severity="major",
            source=self.instrument,
        )


def _waited_for(ahead: table.Ahead, granted_s: float) -> rec.WaitedFor:
    return rec.WaitedFor(
        run_id=ahead.run_id,
        status=ahead.status,
        deadline_process_time_s=None if ahead.deadline_ns is None else ahead.deadline_ns / NS,
        overdue=(
            ahead.granted_ns is not None
            and ahead.max_hold_s is not None
            and granted_s - ahead.granted_ns / NS > ahead.max_hold_s
        ),
    )


def record_waited(
    execution: Execution,
    held: Hold,
    first: table.Outcome,
    *,
    purpose: str,
    step: str | None,
    requested_s: float,
    deadline_s: float | None,
    priority: int,
) -> None:
    """Journal the wait of ``held``: ``first`` is what its request found."""
    execution.record(
        rec.InstrumentWaited(
            instrument=held.instrument,
            asset=held.asset,
            step=step,
            purpose=purpose,
            ticket=held.ticket,
            requested_process_time_s=requested_s,
            granted_process_time_s=held.granted_s,
            waited_s=held.granted_s - requested_s,
            position=first.position,
            waited_for=[_waited_for(ahead, held.granted_s) for ahead in first.ahead],
            deadline_process_time_s=deadline_s,
            priority=priority,
        )
    )


def record_released(held: Hold, outcome: table.Outcome) -> None:
    """Journal the release of ``held`` (``outcome``: what the release did), if it waited,
    was explicit or went past its maximum."""
    if not (held.waited or held.explicit or held.overdue):
        return
    execution = held.execution
    execution.record(
        rec.InstrumentReleased(
            instrument=held.instrument,
            asset=held.asset,
            step=execution.current_step_name,
            ticket=held.ticket,
            held_s=None if outcome.held_ns is None else outcome.held_ns / NS,
            max_hold_s=held.max_hold_s,
            overdue=held.overdue,
        )
    )
