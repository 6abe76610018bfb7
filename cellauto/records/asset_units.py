"""Pools of units: a line offers N units of one kind, a run is bound to any free one.

A line may offer several units under one equipment name (twenty bioreactors for the
line's ``bioreactor``); at admission a run is bound to one free unit for its whole life,
so a protocol asking for ``bioreactor`` runs unchanged on a line of twenty (design of
issue 15, §5.1). The binding is an ``asset_holds`` ticket of the unit (capacity 1),
granted at once and released with the run (:func:`cellauto.records.asset_holds.release_run`):
the same table tells who uses what, dedicated or shared, on every controller.

A run bound before keeps its unit: asked again (a resumed run, or one taken over under a
new epoch: its ticket is moved to that epoch), it gets the unit it holds, never another
one (its culture is in it). A unit whose run has no live controller is free again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from cellauto.records import asset_holds as table
from cellauto.records import backend as db
from cellauto.records.backend import Conn

__all__ = ["take_unit", "unit_of"]


def _open_rows(conn: Conn, units: Sequence[str]) -> list[tuple[str, str, str, int]]:
    marks = ", ".join("?" for _ in units)
    rows = conn.execute(
        "SELECT asset, ticket, run_id, epoch FROM asset_holds"
        f" WHERE status IN ('waiting', 'granted') AND asset IN ({marks}) ORDER BY ticket",
        tuple(units),
    ).fetchall()
    return [(str(a), str(t), str(r), int(e)) for a, t, r, e in rows]


def unit_of(conn: Conn, run_id: str, units: Sequence[str]) -> str | None:
    """The unit of ``units`` the run is bound to (an open ticket of it), or None."""
    if not units:
        return None
    return next((unit for unit, _, run, _ in _open_rows(conn, units) if run == run_id), None)


def take_unit(
    conn: Conn,
    units: Sequence[str],
    hold: table.HoldRequest,
    alive: table.Alive,
    epoch: int,
) -> str | None:
    """Bind the run of ``hold`` to the first free unit of ``units`` (in the open write
    transaction, under the ``ASSET`` lock); None when every unit is in use.

    ``hold.asset`` and ``hold.capacity`` are ignored (each unit is an asset of capacity
    1); the ticket is ``hold.ticket``. A run holding a unit already keeps it (its ticket
    moved to ``epoch``)."""
    if not units:
        raise ValueError(f"run {hold.run_id}: a pool without units")
    db.acquire(conn, db.Lock.ASSET)
    rows = _open_rows(conn, units)
    mine = next(((unit, ticket) for unit, ticket, run, _ in rows if run == hold.run_id), None)
    if mine is not None:
        conn.execute("UPDATE asset_holds SET epoch = ? WHERE ticket = ?", (epoch, mine[1]))
        return mine[0]
    busy = {unit for unit, _, run, run_epoch in rows if alive(run, run_epoch)}
    free = next((unit for unit in units if unit not in busy), None)
    if free is None:
        return None
    outcome = table.request(conn, replace(hold, asset=free, capacity=1), alive, epoch)
    if outcome.status != "granted":  # unreachable: no live ticket stood before it
        raise RuntimeError(f"unit {free} was free but the request {hold.ticket} waits")
    return free
