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

from cellauto.clock import Clock
from cellauto.controller.queue import requeue_taken
from cellauto.protocols.resume import plan_resume
from cellauto.protocols.runner import controller_claimed
from cellauto.protocols.states import State
from cellauto.records import Journal
from cellauto.records import backend as db
from cellauto.records import payloads as rec
from cellauto.records.backend import Conn
from cellauto.records.run_journal import RunJournal

__all__ = [
    "hold_unreachable",
    "orphans",
    "reaching",
    "release_to",
    "released_unended",
    "settle_lost_peer",
    "survivor_order",
    "unreachable_message",
]

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


def released_unended(conn: Conn) -> list[tuple[str, str]]:
    """Runs a controller service released without ending them (it stopped, or handed a
    held run over), with that controller: any controller that reaches their instruments
    takes them."""
    rows = conn.execute(
        "SELECT o.run_id, o.controller FROM run_owners o WHERE o.released_wall_ns IS NOT NULL"
        " AND o.controller IS NOT NULL AND NOT EXISTS"
        " (SELECT 1 FROM records r WHERE r.run_id = o.run_id AND r.kind = 'run_ended')"
        " ORDER BY o.run_id"
    ).fetchall()
    return [(str(run_id), str(controller)) for (run_id, controller) in rows]


def reaching(controllers: list[tuple[str, set[str]]], needed: set[str]) -> list[str]:
    """The names of the controllers (name, assets) that reach every one of ``needed``."""
    return sorted(name for name, assets in controllers if needed <= assets)


def unreachable_message(missing: list[str], peer: str) -> str:
    return (
        f"instruments {', '.join(missing)} were reachable only from controller {peer}, which "
        "is gone; the run holds until a controller that reaches them takes it over"
    )


def hold_unreachable(
    journal: Journal, run_id: str, *, me: str, peer: str, missing: list[str], clock: Clock
) -> RunJournal:
    """Claim a run no live controller can drive and hold it (design §4.4 step 4):
    ``controller_claimed``, a critical alarm naming the instruments, and ``Running ->
    Holding -> Held``; nothing is driven. Returns the open run (the claim kept alive)."""
    plan = plan_resume(journal.records(run_id))
    run = journal.resume_run(run_id, clock.now_s)
    try:
        claimed = controller_claimed(run, reproducible=False)
        if claimed is not None:
            run.append(claimed)
        run.append(
            rec.Alarm(
                source=f"controller {me}",
                severity="critical",
                message=unreachable_message(missing, peer),
            )
        )
        step = None
        if plan.interrupted_step is not None:
            step = plan.run_started.steps[plan.interrupted_step].name
        cause = f"no live controller reaches {', '.join(missing)}"
        if plan.state in (State.RUNNING, State.RESTARTING):
            run.append(
                rec.StateChange(
                    from_state=plan.state.value, to_state="Holding", cause=cause, step=step
                )
            )
            run.append(
                rec.StateChange(from_state="Holding", to_state="Held", cause=cause, step=step)
            )
        elif plan.state is State.HOLDING:
            run.append(
                rec.StateChange(from_state="Holding", to_state="Held", cause=cause, step=step)
            )
        journal.flush()
    except BaseException:
        journal.release_run(run)
        raise
    return run


def release_to(journal: Journal, run: RunJournal, *, me: str, to: str, reason: str) -> None:
    """Hand a held run over: ``controller_released`` (durable), then the claim released."""
    held = run.claim
    run.append(
        rec.ControllerReleased(
            epoch=held.epoch if held is not None else 0,
            controller=me,
            to_controller=to,
            reason=reason,
        )
    )
    journal.release_run(run)
