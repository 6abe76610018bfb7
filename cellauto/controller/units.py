"""Which unit of each pool a controller's run drives (pools of units: issue 15, §5.1).

A line may offer a pool of units under one equipment name (twenty ``bioreactor`` units:
:mod:`cellauto.lines.pools`). A run is bound to one free unit of each pool its protocol
needs when a controller takes it from the queue, in the transaction that marks its queue
row ``taken`` (:func:`cellauto.controller.queue.take`): a run without a free unit stays
queued and is taken when a unit is released (its release notifies the queue). The
binding is an ``asset_holds`` ticket of the unit
(:func:`cellauto.records.asset_units.take_unit`), the least recently used free unit
first; the run's claim checks, in its own transaction, that the ticket is still the
run's (else nothing is written).

A crash between the two leaves the ticket with a queue row that a survivor puts back in
the queue: the next controller to take the run finds the ticket and binds the run to the
same unit. A run keeps its unit for its whole life: a resumed or taken-over run gets back
the unit its ticket names (or, without one, the unit whose instrument it started with),
never another one. The unit is released when the run has ended (Complete, Aborted,
Stopped) or its queue row was refused or cancelled: until then the ticket stands, even
with no controller alive for the run (its culture is in the unit), unlike a shared
instrument's hold (:mod:`cellauto.records.asset_holds`).
"""

from __future__ import annotations

import logging
import sqlite3
import uuid
from collections.abc import Callable, Mapping

import psycopg

from cellauto.controller.queue import QUEUE_CHANNEL
from cellauto.errors import EquipmentError, JournalError
from cellauto.instruments.base import Instrument
from cellauto.instruments.line import Line
from cellauto.protocols.definition import Protocol
from cellauto.records import asset_holds as table
from cellauto.records import backend as db
from cellauto.records import payloads as rec
from cellauto.records.asset_units import take_unit, unit_of
from cellauto.records.backend import Conn
from cellauto.records.backend.notify import notify

__all__ = ["RunUnits", "unit_alive"]

log = logging.getLogger(__name__)

_ENDED_QUEUE = ("refused", "cancelled")


def unit_alive(conn: Conn) -> table.Alive:
    """``alive(run_id, epoch)`` for a unit's ticket: the run has not ended and its queue
    row (if any) was neither refused nor cancelled. Whether a controller drives the run
    now does not matter: its culture is in the unit until the run ends. Each run is
    read once (make one per transaction)."""
    known: dict[str, bool] = {}

    def alive(run_id: str, epoch: int) -> bool:
        if run_id not in known:
            known[run_id] = _unended(run_id)
        return known[run_id]

    def _unended(run_id: str) -> bool:
        ended = conn.execute(
            "SELECT 1 FROM records WHERE run_id = ? AND kind = 'run_ended' LIMIT 1", (run_id,)
        ).fetchone()
        if ended is not None:
            return False
        try:
            row = conn.execute(
                "SELECT status FROM run_queue WHERE run_id = ?", (run_id,)
            ).fetchone()
        except sqlite3.OperationalError as exc:  # an SQLite journal without a queue
            if "no such table" in str(exc):
                return True
            raise
        return row is None or str(row[0]) not in _ENDED_QUEUE

    return alive


def _same(instrument: Instrument, began: rec.EquipmentIdentity) -> bool:
    """Whether ``instrument`` is the one a run started with (vendor, model, serial)."""
    now = instrument.identity
    return (now.vendor, now.model, now.serial) == (began.vendor, began.model, began.serial)


class RunUnits:
    """The pools of a controller's line and the unit each of its runs is bound to."""

    def __init__(self, line: Line, controller: str, now_ns: Callable[[], int]) -> None:
        self.line = line
        self.controller = controller
        self.now_ns = now_ns
        self._taken: dict[str, dict[str, str]] = {}
        """Runs bound at their take, until their Line is made: run id -> pool -> unit."""

    # -- the pools --------------------------------------------------------------------
    def needs(self, protocol: Protocol | None) -> list[str]:
        """The pools ``protocol`` needs a unit of."""
        if protocol is None:
            return []
        return sorted(name for name in protocol.equipment() if name in self.line.pools)

    def _assets(self, pool: str) -> dict[str, str]:
        """unit -> its asset tag (the key of its ``asset_holds`` tickets)."""
        tags = self.line.unit_assets.get(pool, {})
        return {unit: tags.get(unit, unit) for unit in self.line.pools[pool]}

    def _unit(self, pool: str, asset: str) -> str:
        return next(unit for unit, tag in self._assets(pool).items() if tag == asset)

    def _least_used_first(self, conn: Conn, pool: str) -> list[str]:
        """The pool's asset tags, a never-used unit first, then the longest unused."""
        assets = list(self._assets(pool).values())
        marks = ", ".join("?" for _ in assets)
        rows = conn.execute(
            "SELECT asset, MAX(COALESCE(released_wall_ns, granted_wall_ns, requested_wall_ns))"
            f" FROM asset_holds WHERE asset IN ({marks}) GROUP BY asset",
            tuple(assets),
        ).fetchall()
        last = {str(asset): int(at) for asset, at in rows}
        return sorted(assets, key=lambda asset: (last.get(asset, -1), asset))

    def _hold(self, run_id: str, pool: str) -> table.HoldRequest:
        return table.HoldRequest(
            ticket=f"{run_id}:unit:{pool}:{uuid.uuid4().hex[:8]}",
            asset="",
            run_id=run_id,
            controller=self.controller,
            purpose=f"the run's {pool} (a unit of the line's pool, for the run's life)",
            now_ns=self.now_ns(),
        )

    # -- binding ----------------------------------------------------------------------
    def bind(self, conn: Conn, run_id: str, pools: list[str]) -> bool:
        """In the caller's write transaction: bind ``run_id`` to a free unit of each of
        ``pools`` (the unit it holds already, if it does); False, with nothing bound, when
        a pool has no free unit."""
        if not pools:
            self._taken[run_id] = {}
            return True
        conn.execute("SAVEPOINT run_units")
        bound: dict[str, str] = {}
        alive = unit_alive(conn)
        for pool in pools:
            asset = take_unit(
                conn, self._least_used_first(conn, pool), self._hold(run_id, pool), alive, 1
            )
            if asset is None:
                conn.execute("ROLLBACK TO SAVEPOINT run_units")
                conn.execute("RELEASE SAVEPOINT run_units")
                log.info("run %s stays queued: no free unit of %s", run_id, pool)
                return False
            bound[pool] = self._unit(pool, asset)
        conn.execute("RELEASE SAVEPOINT run_units")
        self._taken[run_id] = bound
        return True

    def of_run(self, conn: Conn, run_id: str, started: rec.RunStarted | None) -> dict[str, str]:
        """The units a run drives: bound at its take (a new run), else (a resumed or
        taken-over run, ``started`` its ``run_started``) those its tickets name or, with
        no ticket, those whose instrument it started with. EquipmentError when that unit
        is not the instrument the run started with, or cannot be told."""
        if started is None:
            return self._taken.pop(run_id, {})
        bound: dict[str, str] = {}
        for pool in sorted(set(started.instruments) & set(self.line.pools)):
            began = started.instruments[pool]
            units = self.line.pools[pool]
            same = [unit for unit, instrument in units.items() if _same(instrument, began)]
            asset = unit_of(conn, run_id, list(self._assets(pool).values()))
            unit = self._unit(pool, asset) if asset is not None else None
            if unit is None and len(same) == 1:
                unit = same[0]
            if unit is None or unit not in same:
                raise EquipmentError(
                    f"run {run_id}: its {pool} is "
                    + (f"unit {unit} of the pool" if unit else "no unit the journal names")
                    + f", but it started with {began.vendor} {began.model} serial "
                    f"{began.serial}; it is not resumed on another unit (its culture is in "
                    "that one): check the line file's units"
                )
            bound[pool] = unit
        return bound

    def line_for(self, bound: Mapping[str, str]) -> Line:
        """The run's Line: the controller's, each pool the unit it is bound to."""
        return self.line.with_units(bound) if bound else self.line

    def at_claim(self, run_id: str, bound: Mapping[str, str]) -> Callable[[Conn], None]:
        """A claim-time op (:func:`cellauto.records._owners.at_claim`): the run's tickets
        still name these units (a resumed run without one is bound to its unit again, if
        it is free); JournalError otherwise, and the claim writes nothing."""

        def check(conn: Conn) -> None:
            row = conn.execute("SELECT epoch FROM run_owners WHERE run_id = ?", (run_id,))
            found = row.fetchone()
            epoch = 1 if found is None else int(found[0]) + 1
            alive = unit_alive(conn)
            for pool, unit in bound.items():
                assets = self._assets(pool)
                held = unit_of(conn, run_id, list(assets.values()))
                if held not in (None, assets[unit]):
                    raise JournalError(
                        f"run {run_id} holds unit {self._unit(pool, held)} of {pool}, not "
                        f"{unit}; the run was not claimed"
                    )
                got = take_unit(conn, [assets[unit]], self._hold(run_id, pool), alive, epoch)
                if got is None:
                    raise JournalError(
                        f"run {run_id}: unit {unit} of {pool}, which it started on, is bound "
                        "to another run; the run was not claimed"
                    )

        return check

    def release(
        self, conn: Conn, run_id: str, shared_alive: Callable[[Conn], table.Alive] | None = None
    ) -> list[str]:
        """The run ended (or was refused): its units are free again, and the controllers
        are told (a queued run may take one). Its other open tickets (a shared
        instrument a step did not let go of) are ended too, their queues settled with
        ``shared_alive`` (the owners' liveness). The units released."""
        self._taken.pop(run_id, None)  # refused before its Line was made
        assets = {tag for pool in self.line.pools for tag in self._assets(pool).values()}
        freed: list[str] = []
        if not any(
            row.status in ("waiting", "granted") for row in table.holds(conn, run_id=run_id)
        ):
            return freed  # nothing held: no write
        db.begin_write(conn, db.Lock.ASSET)
        try:
            alive = unit_alive(conn)
            others = shared_alive(conn) if shared_alive is not None else alive
            for row in table.holds(conn, run_id=run_id):
                if row.status not in ("waiting", "granted"):
                    continue
                table.release(
                    conn, row.ticket, self.now_ns(), alive if row.asset in assets else others
                )
                if row.asset in assets:
                    freed.append(row.asset)
            if freed:
                notify(conn, QUEUE_CHANNEL, f"unit free:{','.join(freed)}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return freed

    def ended(self, conn: Conn, run_id: str) -> bool:
        """Whether the run has ended (its ``run_ended`` is in the journal)."""
        return not unit_alive(conn)(run_id, 0)

    def release_ended(
        self, conn: Conn, run_id: str, shared_alive: Callable[[Conn], table.Alive]
    ) -> None:
        """A run that left this controller frees its units if it ended (one still going
        keeps them: taken over); a failure is left to the next bind that looks."""
        try:
            if self.ended(conn, run_id):
                self.release(conn, run_id, shared_alive)
        except (sqlite3.Error, psycopg.Error) as exc:
            log.warning("run %s: its units not released now: %s", run_id, exc)
