"""The writer thread's side of run ownership: the fence and the heartbeat.

Every commit of the writer (:mod:`cellauto.records._writer`) takes the write lock
first and, in the same transaction, asks :meth:`Fence.admit` which of its rows may
go in. That costs one primary-key read of ``meta.owner_generation`` per commit:
only when the generation has moved since the last commit (some claim replaced
another one, which is rare) are the epochs of this journal's runs read again. A run
whose epoch is no longer its own is *lost*: its rows and ledger entries are left
out of this and every later commit, and the run's next append raises
:class:`~cellauto.errors.FencedError` naming the new owner
(:class:`~cellauto.records.run_journal.RunJournal`), so that the old controller
stops driving the run's instruments (every physical action waits for its durable
intent). The other runs of the commit are written as usual.

The heartbeat of every run held is refreshed in real seconds, whatever the event
loop's clock: every quarter of the stale interval, in the next commit or, when the
writer is idle, in a transaction of its own.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import TypeVar

from cellauto.records._owners import (
    EPOCH_QUERY,
    GENERATION_QUERY,
    Claim,
    Owner,
    beat,
)
from cellauto.records.backend import Conn, Location
from cellauto.records.ledger import LedgerEvent

__all__ = ["Fence", "fenced_message"]

RECHECK_CHUNK = 500
"""Runs whose owners one query of :meth:`Fence.admit` reads (old SQLite builds take 999 ``?``)."""
EPOCHS_QUERY = EPOCH_QUERY.replace("run_id = ?", "run_id IN")
"""The owners of several runs: append ``(?, ?, ...)``."""

MIN_HEARTBEAT_S = 0.05
"""The shortest heartbeat period (for a stale interval of nearly nothing, in tests)."""

_R = TypeVar("_R", bound=tuple[object, ...])
_UNSEEN = ("never read",)


def fenced_message(path: Path | Location, held: Claim, now: Owner | None) -> str:
    """Why a controller may no longer write a run it had claimed."""
    me = held.controller
    who = "nobody (its claim was removed)" if now is None else now.describe()
    since = ""
    if now is not None:
        since = " at " + time.strftime(
            "%Y-%m-%d %H:%M:%S UTC", time.gmtime(now.started_wall_ns / 1e9)
        )
    return (
        f"run {held.run_id} in {path}: this controller (pid {me.pid} on host {me.host!r}, "
        f"epoch {held.epoch}) no longer owns the run: it was taken over by {who}{since}. "
        "Its records from then on are refused and it stops driving the run's instruments; "
        "the run goes on under its new controller (`cellauto show` lists who controlled "
        "it when). If this controller was not dead or hung, its heartbeat could not be "
        "written: raise CELLAUTO_OWNER_STALE_S"
    )


class Fence:
    """The epochs a journal's writer holds (``owned``, shared with the journal), checked
    in every commit; ``lost`` (written here, read by the journal) maps each run taken
    over from it to the message its next append raises."""

    def __init__(
        self,
        path: Path | Location,
        owned: dict[str, Claim],
        lost: dict[str, str],
        *,
        stale_s: float,
        heartbeat_s: float | None = None,
    ) -> None:
        self._path = path
        self.owned = owned
        self.lost = lost
        # at least every stale_s / 4, or more often if asked (a controller's self-fence)
        every_s = stale_s / 4 if heartbeat_s is None else min(stale_s / 4, heartbeat_s)
        self.heartbeat_s = max(every_s, MIN_HEARTBEAT_S)
        self._seen: object = _UNSEEN
        self._next_beat = time.monotonic() + self.heartbeat_s

    def admit(
        self, conn: Conn, rows: list[_R], events: list[LedgerEvent]
    ) -> tuple[list[_R], list[LedgerEvent]]:
        """Inside the commit's write transaction: leave out the rows of runs taken over."""
        generation = conn.execute(GENERATION_QUERY).fetchone()
        if generation != self._seen:
            self._recheck(conn, self.owned.copy().values())
            self._seen = generation
        lost = self.lost
        if lost:
            rows = [row for row in rows if row[0] not in lost]
            events = [event for event in events if event.run_id not in lost]
        return rows, events

    def _recheck(self, conn: Conn, held: Iterable[Claim]) -> None:
        """Read the owners of the runs held, ``RECHECK_CHUNK`` runs a query (one query per
        run was 100 round trips in the first commit after a controller began 100 runs, each
        waiting for the GIL behind the event loop: the writer fell ~0.5 s behind)."""
        claims = [claim for claim in held if claim.run_id not in self.lost]
        for start in range(0, len(claims), RECHECK_CHUNK):
            chunk = claims[start : start + RECHECK_CHUNK]
            marks = ", ".join("?" * len(chunk))
            rows = conn.execute(
                f"{EPOCHS_QUERY} ({marks})", [claim.run_id for claim in chunk]
            ).fetchall()
            owners = {row[0]: Owner(*row) for row in rows}
            for claim in chunk:
                now = owners.get(claim.run_id)
                if now is None or now.epoch != claim.epoch:
                    self.lost[claim.run_id] = fenced_message(self._path, claim, now)

    def until_beat_s(self) -> float | None:
        """Real seconds until the next heartbeat is due; None while no run is held."""
        if not self.owned:
            return None
        return self._next_beat - time.monotonic()

    def beat(self, conn: Conn) -> None:
        """If due, refresh the heartbeat of every run held (inside a write transaction)."""
        if not self.owned or time.monotonic() < self._next_beat:
            return
        lost = self.lost
        held = [(run_id, c.epoch) for run_id, c in self.owned.copy().items() if run_id not in lost]
        beat(conn, time.time_ns(), held)  # on PostgreSQL: the server's clock
        self._next_beat = time.monotonic() + self.heartbeat_s
