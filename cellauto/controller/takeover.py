"""Taking a lost peer's runs over (design of issue 15, §4.4).

When a peer's presence ends (:class:`~cellauto.controller.presence.PeerWatch`), after
``grace_s`` a survivor marks it ``lost`` (idempotent: the first survivor does), puts the
queue rows it took but never began back in the queue, and lists its *orphans*: runs
it claimed that have not ended. Each survivor goes through them in an order of its own
(a hash of its name and the run: survivors mostly try different runs first) and takes
those whose instruments it reaches, within its free capacity, by the existing resume
(``Journal.resume_run``: a claim with the fence taken exclusively and the epoch one
more; the claim of a run another survivor took first is refused, and skipped here).
"""

from __future__ import annotations

import hashlib
import logging

from cellauto.controller.queue import requeue_taken
from cellauto.records import backend as db
from cellauto.records.backend import Conn

__all__ = ["orphans", "settle_lost_peer", "survivor_order"]

log = logging.getLogger(__name__)


def settle_lost_peer(conn: Conn, peer: str) -> list[str]:
    """The queue rows ``peer`` took but never began go back to the queue (one
    transaction); their run ids."""
    db.begin_write(conn)
    try:
        back = requeue_taken(conn, peer)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return back


def orphans(conn: Conn, peer: str) -> list[str]:
    """The runs ``peer`` claimed last and that have not ended (released or not)."""
    rows = conn.execute(
        "SELECT o.run_id FROM run_owners o WHERE o.controller = ? AND NOT EXISTS"
        " (SELECT 1 FROM records r WHERE r.run_id = o.run_id AND r.kind = 'run_ended')"
        " ORDER BY o.run_id",
        (peer,),
    ).fetchall()
    return [str(run_id) for (run_id,) in rows]


def survivor_order(me: str, run_ids: list[str]) -> list[str]:
    """``run_ids`` in this survivor's own order (survivors try different runs first)."""
    return sorted(run_ids, key=lambda run_id: hashlib.sha256(f"{me}:{run_id}".encode()).digest())
