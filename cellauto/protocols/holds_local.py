"""Shared instruments in this process: who waits for which ticket, which run holds what.

A waiting run of this process is woken by the commit (of this process) that grants its
ticket; these are the waiters, by journal, and the explicit holds in force, by run. The
helpers here run a change of ``asset_holds`` in the run's own commit (a run that lost its
claim cannot acquire) and tell whose tickets are still alive.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from cellauto.records import asset_holds as table
from cellauto.records._owners import this_controller
from cellauto.records._txops import ConnOp
from cellauto.records.backend import Conn

if TYPE_CHECKING:
    from cellauto.protocols.execution import Execution
    from cellauto.protocols.holds import Hold

__all__ = [
    "NS",
    "RunHolds",
    "Wakeups",
    "alive",
    "controller",
    "holding",
    "in_commit",
    "journal_of",
    "now_ns",
    "run_holds",
    "wakeups",
]

NS = 1_000_000_000


class Wakeups:
    """The waiters of one journal in this process: granted tickets wake them."""

    def __init__(self) -> None:
        self.events: dict[str, anyio.Event] = {}

    def event(self, ticket: str) -> anyio.Event:
        event = self.events.get(ticket)
        if event is None:
            event = self.events[ticket] = anyio.Event()
        return event

    def wake(self, tickets: list[str]) -> None:
        for ticket in tickets:
            self.event(ticket).set()

    def forget(self, ticket: str) -> None:
        self.events.pop(ticket, None)


@dataclass
class RunHolds:
    """What one run of this process holds: its tickets so far, its explicit holds."""

    tickets: int = 0
    active: dict[str, Hold] = field(default_factory=dict)
    """Explicit holds in force, by asset (calls inside them take no hold of their own)."""


_WAKEUPS: weakref.WeakKeyDictionary[object, Wakeups] = weakref.WeakKeyDictionary()
_RUNS: weakref.WeakKeyDictionary[object, RunHolds] = weakref.WeakKeyDictionary()


def journal_of(execution: Execution) -> Any:
    """The Journal the run writes to."""
    return execution._journal._journal  # the Journal behind the run's RunJournal


def wakeups(execution: Execution) -> Wakeups:
    """The waiters of the run's journal in this process."""
    journal = journal_of(execution)
    found = _WAKEUPS.get(journal)
    if found is None:
        found = _WAKEUPS[journal] = Wakeups()
    return found


def run_holds(execution: Execution) -> RunHolds:
    """What the run holds in this process."""
    found = _RUNS.get(execution)
    if found is None:
        found = _RUNS[execution] = RunHolds()
    return found


def holding(execution: Execution, asset: str) -> bool:
    """Whether the run holds ``asset`` explicitly now (``run.hold``)."""
    return asset in run_holds(execution).active


def controller() -> str:
    """This controller's name in ``asset_holds`` (host:pid)."""
    me = this_controller()
    return f"{me.host}:{me.pid}"


def now_ns(execution: Execution) -> int:
    """The run's clock now, in ns."""
    return round(execution.clock.now_s() * NS)


def alive(execution: Execution, conn: Conn) -> table.Alive:
    """Whether a ticket's run is still held under its epoch (read in ``conn``)."""
    journal = journal_of(execution)
    # the owner key as the journal's claims write it (a file's resolved path, or the URL
    # of a PostgreSQL journal)
    return table.owner_liveness(
        conn, journal._owner_key(), stale_s=journal._stale_s, real_now_ns=time.time_ns()
    )


async def in_commit(execution: Execution, what: str, change: Callable[[Conn], Any]) -> Any:
    """Run ``change`` in the run's next commit (with its records so far); its value."""
    op = ConnOp(change, run_id=execution.run_id, what=what)
    [value] = await execution.run_ops([op])
    return value
