"""Shared instruments in this process: who waits for which ticket, which run holds what.

A waiting run of this process is woken by the commit (of this process) that grants its
ticket; these are the waiters, by journal, and the explicit holds in force, by run. The
helpers here run a change of ``asset_holds`` in the run's own commit (a run that lost its
claim cannot acquire) and tell whose tickets are still alive.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from cellauto.clock import time_paused
from cellauto.protocols.holds_feed import AssetListener
from cellauto.records import asset_holds as table
from cellauto.records._owners import this_controller
from cellauto.records._txops import ConnOp
from cellauto.records.backend import Conn, Location

if TYPE_CHECKING:
    from cellauto.protocols.execution import Execution
    from cellauto.protocols.holds import Hold
    from cellauto.records import Journal

__all__ = [
    "NS",
    "RunHolds",
    "Wakeups",
    "alive",
    "controller",
    "holding",
    "in_commit",
    "journal_alive",
    "journal_of",
    "now_ns",
    "run_holds",
    "wakeups",
]

NS = 1_000_000_000


class Wakeups:
    """The waiters of one database in this process (every Journal on it): granted tickets
    wake them, whichever Journal's commit granted them; on PostgreSQL a listener wakes them
    for the grants of other processes (:mod:`.holds_feed`)."""

    def __init__(self, location: Location) -> None:
        self.events: dict[str, anyio.Event] = {}
        self.asking: Counter[str] = Counter()
        """Runs of this process asking for or waiting for an asset (by run id; a run
        that no longer asks has no entry: its listener reads only the length)."""
        self.listener = (
            AssetListener(location, lambda: len(self.asking) > 0, self._heard)
            if location.url is not None
            else None
        )

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

    def _heard(self, tickets: list[str] | None) -> None:
        """Grants heard from the database (None: perhaps any): wake the waiters here."""
        if tickets is None:
            self.wake(list(self.events))
            return
        self.wake([t for t in tickets if t in self.events or _run_of(t) in self.asking])

    def heard(self) -> bool:
        """Whether grants by other processes wake the waiters now (a LISTEN in force)."""
        return self.listener is not None and self.listener.listening()

    async def listening(self) -> bool:
        """Make sure grants by other processes wake the waiters (PostgreSQL); whether a
        listener is in force now."""
        if self.listener is None:
            return False
        ready = self.listener.start(asyncio.get_running_loop())
        if not ready.is_set():
            with time_paused():
                await anyio.to_thread.run_sync(ready.wait)
        return self.listener.listening()


def _run_of(ticket: str) -> str:
    return ticket.rsplit(":", 2)[0]  # run_id:epoch:number


@dataclass
class RunHolds:
    """What one run of this process holds: its tickets so far, its explicit holds."""

    tickets: int = 0
    active: dict[str, Hold] = field(default_factory=dict)
    """Explicit holds in force, by asset (calls inside them take no hold of their own)."""


_WAKEUPS: weakref.WeakKeyDictionary[object, Wakeups] = weakref.WeakKeyDictionary()
_BY_DATABASE: weakref.WeakValueDictionary[str, Wakeups] = weakref.WeakValueDictionary()
_RUNS: weakref.WeakKeyDictionary[object, RunHolds] = weakref.WeakKeyDictionary()


def journal_of(execution: Execution) -> Any:
    """The Journal the run writes to."""
    return execution._journal._journal  # the Journal behind the run's RunJournal


def wakeups(execution: Execution) -> Wakeups:
    """The waiters of the run's database in this process."""
    journal = journal_of(execution)
    found = _WAKEUPS.get(journal)
    if found is None:
        key = str(journal._owner_key())  # its database: a file's path, a schema's URL
        found = _BY_DATABASE.get(key)
        if found is None:
            found = _BY_DATABASE[key] = Wakeups(journal.location)
        _WAKEUPS[journal] = found
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
    return journal_alive(journal_of(execution), conn)


def journal_alive(journal: Journal, conn: Conn) -> table.Alive:
    """Whether a ticket's run is still held under its epoch, by ``journal``'s claims."""
    # the owner key as the journal's claims write it (a file's resolved path, or the URL
    # of a PostgreSQL journal)
    return table.owner_liveness(conn, journal._owner_key(), stale_s=journal._stale_s)


async def in_commit(execution: Execution, what: str, change: Callable[[Conn], Any]) -> Any:
    """Run ``change`` in the run's next commit (with its records so far); its value."""
    op = ConnOp(change, run_id=execution.run_id, what=what)
    [value] = await execution.run_ops([op])
    return value
