"""Who gets a shared instrument next: earliest deadline first, with aging (issue 15, §5.2).

A pure function of the queue, so that every controller sharing a journal computes the
same grants from the same rows, and so that it is tested on its own.

Each waiting request has an *effective deadline*: its own deadline when it has one (a drawn
sample's expiry, so a sample that expires sooner waits less), else the moment it was
requested plus the asset's *patience* (aging: a request without a deadline becomes urgent
as it waits). Waiting requests are served in the order of (effective deadline, higher
priority first, requested earlier, ticket). A request cannot starve: its effective deadline
is fixed when it arrives and never moves, and every request arriving later without a
deadline sorts after it; only requests with an earlier deadline of their own pass it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["Waiting", "effective_deadline_ns", "next_grants", "queue_order"]


@dataclass(frozen=True)
class Waiting:
    """A waiting request, as the queue sees it (times in ns on the line's clock)."""

    ticket: str
    requested_ns: int
    deadline_ns: int | None = None
    """When what it serves expires (a drawn sample's expiry); None: no deadline."""
    priority: int = 0
    """Higher is served first among requests with the same effective deadline."""
    patience_ns: int = 3_600_000_000_000
    """Without a deadline: how long it may wait before it is as urgent as a deadline."""


def effective_deadline_ns(request: Waiting) -> int:
    """The request's deadline, else requested + patience (earlier of the two if both)."""
    aged = request.requested_ns + request.patience_ns
    return aged if request.deadline_ns is None else min(request.deadline_ns, aged)


def _key(request: Waiting) -> tuple[int, int, int, str]:
    return (effective_deadline_ns(request), -request.priority, request.requested_ns, request.ticket)


def queue_order(waiting: Iterable[Waiting]) -> list[Waiting]:
    """The waiting requests in the order they are to be served."""
    return sorted(waiting, key=_key)


def next_grants(waiting: Sequence[Waiting], granted: int, capacity: int) -> list[str]:
    """The tickets to grant now: the first of the queue order, as many as the free units
    (``capacity`` minus the ``granted`` holds); never more than capacity in all."""
    if capacity < 1:
        raise ValueError(f"an asset's capacity is at least 1, not {capacity}")
    free = max(0, capacity - granted)
    return [request.ticket for request in queue_order(waiting)[:free]]
