"""The ``asset_holds`` table: who holds, and who waits for, each shared instrument.

One row per request (a *ticket*) of a run for an asset (the registry tag of a shared
instrument, or the line's name for it). A ticket is ``waiting``, then ``granted``, then
``released``; a waiting ticket may be ``cancelled``. Grants are made in the transaction
that requests or releases, in the order of :func:`cellauto.protocols.holds_order.next_grants`,
so every controller sharing the journal agrees on the queue: the reservation lives in the
database. On SQLite the write transaction is the one write lock; on PostgreSQL it takes
the ``ASSET`` lock (a no-op on SQLite).

Crash safety: before granting, the tickets of runs that nobody holds any more (the owner
released the run, its process is gone, its heartbeat is stale, or the run was taken over
under a newer epoch: :mod:`cellauto.records._owners`) are ended (``released`` /
``cancelled``, with a note): a dead holder does not keep an instrument.

On PostgreSQL each grant is announced on the ``cellauto_assets`` channel
(:func:`granted_payload`), delivered at the commit: a waiting controller is woken by it
(:mod:`cellauto.protocols.holds_feed`); SQLite's waiters poll.

The table is not chained (the waits are journaled in each run's chain: the run records
``instrument_waited`` and ``instrument_released``). Its DDL lives here until schema v8
(``records/_schema.py``) declares it; it is created, if missing, inside the write
transaction of the first request.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from cellauto.records import backend as db
from cellauto.records._owners import orphaned as _orphaned
from cellauto.records._owners import owner_of, wall_now_ns
from cellauto.records.backend import Conn
from cellauto.records.backend.notify import notify

if TYPE_CHECKING:
    from cellauto.protocols.holds_order import Waiting

__all__ = [
    "CHANNEL",
    "Ahead",
    "Alive",
    "HoldRequest",
    "HoldRow",
    "Outcome",
    "granted_payload",
    "granted_tickets",
    "holds",
    "owner_liveness",
    "peek",
    "poll",
    "release",
    "release_run",
    "request",
]

_COLUMNS = (
    "ticket, asset, run_id, epoch, controller, step, purpose, priority, capacity, patience_ns,"
    " deadline_wall_ns, requested_wall_ns, granted_wall_ns, released_wall_ns, max_hold_s,"
    " status, note"
)

CHANNEL = "cellauto_assets"
"""The change channel of grants (PostgreSQL: NOTIFY at the granting commit)."""
_GRANTED = "granted"


def granted_payload(ticket: str) -> str:
    """The notification of a grant of ``ticket``."""
    return f"{_GRANTED} {ticket}"


def granted_tickets(payloads: list[tuple[str, str]]) -> list[str]:
    """The tickets granted, from a feed's ``(channel, payload)`` notifications."""
    found = []
    for channel, payload in payloads:
        what, _, ticket = payload.partition(" ")
        if channel == CHANNEL and what == _GRANTED and ticket:
            found.append(ticket)
    return found


Alive = Callable[[str, int], bool]
"""``alive(run_id, epoch)``: whether the ticket's run is still held under that epoch."""


class HoldRow(NamedTuple):
    """An ``asset_holds`` row, as stored (times in ns on the line's clock)."""

    ticket: str
    asset: str
    run_id: str
    epoch: int
    controller: str
    step: str | None
    purpose: str
    priority: int
    capacity: int
    patience_ns: int
    deadline_wall_ns: int | None
    requested_wall_ns: int
    granted_wall_ns: int | None
    released_wall_ns: int | None
    max_hold_s: float | None
    status: str
    note: str | None

    def waiting(self) -> Waiting:
        from cellauto.protocols.holds_order import Waiting  # the queue's pure order

        return Waiting(
            ticket=self.ticket,
            requested_ns=self.requested_wall_ns,
            deadline_ns=self.deadline_wall_ns,
            priority=self.priority,
            patience_ns=self.patience_ns,
        )


@dataclass(frozen=True)
class HoldRequest:
    """A run asking for an asset (``now_ns`` and the deadline on the line's clock)."""

    ticket: str
    asset: str
    run_id: str
    controller: str
    purpose: str
    now_ns: int
    step: str | None = None
    priority: int = 0
    capacity: int = 1
    patience_ns: int = 3_600_000_000_000
    deadline_ns: int | None = None
    max_hold_s: float | None = None


class Ahead(NamedTuple):
    """A ticket before the request: holding the asset, or waiting before it."""

    run_id: str
    status: str
    granted_ns: int | None
    deadline_ns: int | None
    max_hold_s: float | None


@dataclass
class Outcome:
    """What a request, a poll or a release found and did."""

    ticket: str
    status: str
    """The ticket's status after the transaction."""
    granted_ns: int | None = None
    held_ns: int | None = None
    """For a release: how long the ticket was held."""
    position: int = 0
    """Waiting: how many tickets are before it (holders and earlier waiters)."""
    ahead: list[Ahead] = field(default_factory=list)
    woken: list[str] = field(default_factory=list)
    """Tickets granted in this transaction (to wake their waiters)."""
    remote: bool = False
    """Whether a ticket before it belongs to another controller."""


def owner_liveness(conn: Conn, path: Path | str | db.Location, *, stale_s: float) -> Alive:
    """``alive(run_id, epoch)`` from ``run_owners`` (see :mod:`cellauto.records._owners`):
    the run's owner is live and its epoch is the ticket's. Heartbeats are compared on the
    clock they are written on (the server's on PostgreSQL: a controller whose own clock
    runs ahead must not find live runs stale), read once, when first needed."""
    key = str(path)
    cache: dict[tuple[str, int], bool] = {}
    now: list[int] = []

    def alive(run_id: str, epoch: int) -> bool:
        known = cache.get((run_id, epoch))
        if known is None:
            owner = owner_of(conn, run_id)
            if owner is not None and owner.epoch == epoch and not now:
                now.append(wall_now_ns(conn))
            known = (
                owner is not None
                and owner.epoch == epoch
                and not _orphaned(conn, run_id, key, now[0], stale_s)
            )
            cache[(run_id, epoch)] = known
        return known

    return alive


def _open_rows(conn: Conn, asset: str) -> list[HoldRow]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM asset_holds WHERE asset = ? AND status IN ('waiting', 'granted')"
        " ORDER BY ticket",
        (asset,),
    ).fetchall()
    return [HoldRow(*row) for row in rows]


def _row(conn: Conn, ticket: str) -> HoldRow | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM asset_holds WHERE ticket = ?", (ticket,)).fetchone()
    return None if row is None else HoldRow(*row)


def _settle(conn: Conn, asset: str, now_ns: int, alive: Alive) -> list[str]:
    """End the tickets of dead holders, then grant what the queue order allows."""
    from cellauto.protocols.holds_order import next_grants

    db.acquire(conn, db.Lock.ASSET)
    rows = _open_rows(conn, asset)
    live: list[HoldRow] = []
    for row in rows:
        if alive(row.run_id, row.epoch):
            live.append(row)
            continue
        status = "released" if row.status == "granted" else "cancelled"
        conn.execute(
            "UPDATE asset_holds SET status = ?, released_wall_ns = ?, note = ? WHERE ticket = ?",
            (status, now_ns, "its run has no live controller under this epoch", row.ticket),
        )
    waiting = [row for row in live if row.status == "waiting"]
    granted = sum(1 for row in live if row.status == "granted")
    if not waiting:
        return []
    # the capacity in force is the latest request's (a line file may change it)
    capacity = max(live, key=lambda r: (r.requested_wall_ns, r.ticket)).capacity
    grants = next_grants([row.waiting() for row in waiting], granted, capacity)
    for ticket in grants:
        conn.execute(
            "UPDATE asset_holds SET status = 'granted', granted_wall_ns = ? WHERE ticket = ?",
            (now_ns, ticket),
        )
        notify(conn, CHANNEL, granted_payload(ticket))  # to waiters of other processes
    return grants


def _outcome(conn: Conn, ticket: str, woken: list[str], controller: str) -> Outcome:
    from cellauto.protocols.holds_order import queue_order

    row = _row(conn, ticket)
    if row is None:
        raise LookupError(f"no hold ticket {ticket!r}")
    outcome = Outcome(ticket, row.status, granted_ns=row.granted_wall_ns, woken=woken)
    if row.status != "waiting":
        return outcome
    rows = _open_rows(conn, row.asset)
    holders = [r for r in rows if r.status == "granted"]
    order = queue_order(r.waiting() for r in rows if r.status == "waiting")
    before = [w.ticket for w in order[: [w.ticket for w in order].index(ticket)]]
    by_ticket = {r.ticket: r for r in rows}
    ahead_rows = holders + [by_ticket[t] for t in before]
    outcome.position = len(ahead_rows)
    outcome.ahead = [
        Ahead(r.run_id, r.status, r.granted_wall_ns, r.deadline_wall_ns, r.max_hold_s)
        for r in ahead_rows
    ]
    outcome.remote = any(r.controller != controller for r in ahead_rows)
    return outcome


def request(conn: Conn, hold: HoldRequest, alive: Alive, epoch: int) -> Outcome:
    """Queue ``hold`` under the run's ``epoch`` and grant what can be granted."""
    db.acquire(conn, db.Lock.ASSET)
    conn.execute(
        f"INSERT INTO asset_holds ({_COLUMNS}) VALUES"
        " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, 'waiting', NULL)",
        (
            hold.ticket,
            hold.asset,
            hold.run_id,
            epoch,
            hold.controller,
            hold.step,
            hold.purpose,
            hold.priority,
            hold.capacity,
            hold.patience_ns,
            hold.deadline_ns,
            hold.now_ns,
            hold.max_hold_s,
        ),
    )
    woken = _settle(conn, hold.asset, hold.now_ns, alive)
    return _outcome(conn, hold.ticket, woken, hold.controller)


def poll(conn: Conn, ticket: str, now_ns: int, alive: Alive, controller: str) -> Outcome:
    """Settle the ticket's asset again (dead holders ended) and tell where it stands."""
    row = _row(conn, ticket)
    if row is None:
        raise LookupError(f"no hold ticket {ticket!r}")
    woken = _settle(conn, row.asset, now_ns, alive) if row.status == "waiting" else []
    return _outcome(conn, ticket, woken, controller)


def peek(conn: Conn, ticket: str, controller: str, local_runs: Collection[str]) -> tuple[str, bool]:
    """Reads only: the ticket's status, and whether its asset's queue needs settling by a
    write (:func:`poll`): a unit free while the ticket waits, an open ticket of another
    controller (it may have died), or one of this controller's for a run it no longer
    holds."""
    row = _row(conn, ticket)
    if row is None:
        raise LookupError(f"no hold ticket {ticket!r}")
    if row.status != "waiting":
        return row.status, False
    others = conn.execute(
        "SELECT controller, run_id, status FROM asset_holds"
        " WHERE asset = ? AND status IN ('waiting', 'granted') AND ticket != ?",
        (row.asset, ticket),
    ).fetchall()
    granted = sum(1 for *_, status in others if status == "granted")
    unsettled = granted < row.capacity or any(
        c != controller or run_id not in local_runs for c, run_id, _ in others
    )
    return row.status, unsettled


def release(conn: Conn, ticket: str, now_ns: int, alive: Alive) -> Outcome:
    """End the ticket (granted: released; waiting: cancelled) and grant the next."""
    row = _row(conn, ticket)
    if row is None:
        raise LookupError(f"no hold ticket {ticket!r}")
    if row.status in ("waiting", "granted"):
        db.acquire(conn, db.Lock.ASSET)
        status = "released" if row.status == "granted" else "cancelled"
        conn.execute(
            "UPDATE asset_holds SET status = ?, released_wall_ns = ? WHERE ticket = ?",
            (status, now_ns, ticket),
        )
    else:
        status = row.status
    woken = _settle(conn, row.asset, now_ns, alive)
    held = (
        None
        if row.granted_wall_ns is None
        else (row.released_wall_ns if row.released_wall_ns is not None else now_ns)
        - row.granted_wall_ns
    )
    return Outcome(ticket, status, granted_ns=row.granted_wall_ns, held_ns=held, woken=woken)


def release_run(conn: Conn, run_id: str, now_ns: int, alive: Alive) -> list[str]:
    """End every open ticket of ``run_id`` (the run ended); the tickets granted then."""
    try:
        rows = conn.execute(
            "SELECT ticket FROM asset_holds WHERE run_id = ? AND status IN ('waiting', 'granted')"
            " ORDER BY ticket",
            (run_id,),
        ).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise
    woken: list[str] = []
    for (ticket,) in rows:
        woken.extend(release(conn, ticket, now_ns, alive).woken)
    return woken


def holds(conn: Conn, *, asset: str | None = None, run_id: str | None = None) -> list[HoldRow]:
    """The tickets (of an asset, of a run), oldest request first; [] without the table."""
    where, args = [], []
    if asset is not None:
        where.append("asset = ?")
        args.append(asset)
    if run_id is not None:
        where.append("run_id = ?")
        args.append(run_id)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    try:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM asset_holds{clause} ORDER BY requested_wall_ns, ticket",
            args,
        ).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise
    return [HoldRow(*row) for row in rows]
