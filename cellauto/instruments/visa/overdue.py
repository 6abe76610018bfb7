"""When a wait on an overlapped SCPI operation (a count, a shipper's lid open for a load)
gives up: once its limit of process time has passed *and* the instrument was seen still
busy at enough polls to cover that limit.

Process time alone is not enough: on a sped-up simulated line (a scaled clock), a loop
that stalls for a fraction of a real second under load jumps process time ahead by
minutes, and one late poll would call a healthy instrument stuck. A stuck instrument is
seen busy at poll after poll; a stalled loop polls once, late, and finds it done.
"""

from __future__ import annotations

import math

import anyio

__all__ = ["Overdue"]


class Overdue:
    """``overdue = Overdue(limit_s, poll_interval_s)``, then ``overdue.seen_busy()`` after
    each poll that found the operation unfinished: True once it is overdue."""

    def __init__(self, limit_s: float, poll_interval_s: float) -> None:
        self.limit_s = limit_s
        self.started = anyio.current_time()
        self.busy_polls = 0
        self.needed_polls = max(1, math.ceil(limit_s / poll_interval_s / 2))

    def seen_busy(self) -> bool:
        """Count one poll that found it busy; whether the wait should give up."""
        self.busy_polls += 1
        elapsed = anyio.current_time() - self.started
        return elapsed > self.limit_s and self.busy_polls >= self.needed_polls
