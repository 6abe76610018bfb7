"""Taking a lost peer's runs over (design of issue 15, §4.4).

When a peer's presence ends (:class:`~cellauto.controller.presence.PeerWatch`), after
``grace_s`` a survivor marks it ``lost`` (idempotent: the first survivor does), puts the
queue rows it took but never began back in the queue, and lists its *orphans*: runs
it claimed that have not ended. Each survivor goes through them in an order of its own
(a hash of its name and the run: survivors mostly try different runs first) and takes
those whose instruments it reaches, within its free capacity, by the existing resume
(``Journal.resume_run``: a claim with the fence taken exclusively and the epoch one
more; the claim of a run another survivor took first is refused, and skipped here).

A run no live controller reaches is claimed by the lowest-named survivor, alarmed and
held (:func:`hold_unreachable`), and handed over with ``controller_released``
(:func:`release_to`) when a controller that reaches it registers. :class:`Takeovers` is
the service's side of all this (a base of
:class:`~cellauto.controller.service.ControllerService`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from cellauto.cli.run_cmd import line_origin
from cellauto.cli.run_site import resume_site
from cellauto.clock import Clock, sleep_real
from cellauto.controller import queue
from cellauto.controller.presence import ControllerRow, PeerWatch, Presence
from cellauto.controller.queue import requeue_taken
from cellauto.controller.reach import ProtocolShelf, missing_assets, run_assets
from cellauto.errors import CellautoError, RunOwnedError
from cellauto.instruments.line import Line
from cellauto.protocols import Runner
from cellauto.protocols.execution import Execution
from cellauto.protocols.inbox import PeopleInbox
from cellauto.protocols.resume import plan_resume
from cellauto.protocols.runner import controller_claimed
from cellauto.protocols.states import State
from cellauto.records import Journal, RecordKind, _owners
from cellauto.records import backend as db
from cellauto.records import payloads as rec
from cellauto.records.backend import Conn, Location
from cellauto.records.backend.notify import notify
from cellauto.records.run_journal import RunJournal
from cellauto.sim.site import SimSite
from cellauto.site.view import FileSite

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from cellauto.controller.service import ControllerSettings

__all__ = [
    "Takeovers",
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


_UNENDED = (
    "NOT EXISTS (SELECT 1 FROM records r WHERE r.run_id = o.run_id AND r.kind = 'run_ended'"
    " AND r.seq = (SELECT max(m.seq) FROM records m WHERE m.run_id = o.run_id))"
)
"""The run of run_owners row ``o`` has not ended: its last record is not ``run_ended``
(only the seal, in the ledger, follows it). Two lookups in the (run_id, seq) index per
run; asking for any ``run_ended`` of the run read every record of it, and
:func:`released_unended` after each run's end read the whole journal (0.37 s a call at
200 CAR-T batches, on the controller's loop)."""


def orphans(conn: Conn, peer: str) -> list[str]:
    """The runs ``peer`` claimed last and that have not ended (released or not)."""
    rows = conn.execute(
        f"SELECT o.run_id FROM run_owners o WHERE o.controller = ? AND {_UNENDED}"
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
        f" AND o.controller IS NOT NULL AND {_UNENDED} ORDER BY o.run_id"
    ).fetchall()
    return [(str(run_id), str(controller)) for (run_id, controller) in rows]


def reaching(controllers: list[tuple[str, set[str]]], needed: set[str]) -> list[str]:
    """The names of the controllers (name, assets) that reach every one of ``needed``."""
    return sorted(name for name, assets in controllers if needed <= assets)


def unreachable_message(missing: list[str], peer: str, *, own_world: bool = False) -> str:
    if own_world:  # a line_per_run controller's run: its simulated world ended with it
        return (
            f"instruments {', '.join(missing)} were reachable only from controller {peer}, "
            "which is gone: the run's simulated world (its cells, its instruments) ended "
            "with it, and no controller can take it over; the run holds for a person to "
            "stop or abort it"
        )
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
                message=unreachable_message(missing, peer, own_world=plan.run_started.simulated),
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


class Takeovers:
    """The peer side of :class:`~cellauto.controller.service.ControllerService`: watching
    its peers' presence, taking over the runs of a lost one, holding and handing over the
    runs nobody reaches (a base class; the service sets the attributes below)."""

    settings: ControllerSettings
    url: str
    conn: Conn
    journal: Journal
    line: Line
    reached: set[str]
    shelf: ProtocolShelf
    inbox: PeopleInbox
    presence: Presence
    taken_over: list[str]
    _running: dict[str, Execution]
    _holding: dict[str, tuple[RunJournal, set[str]]]
    _watches: dict[str, PeerWatch]
    _resume_slots: anyio.Semaphore
    _stopping: bool
    _wake: anyio.Event
    _tg: TaskGroup

    def _say(self, text: str) -> None:
        raise NotImplementedError

    def _execute(
        self,
        execution: Execution,
        tg: TaskGroup,
        *,
        by: str,
        closing: Callable[[], None] | None = None,
    ) -> None:
        raise NotImplementedError

    def _pooled_line(
        self, run_id: str, started: rec.RunStarted | None = None
    ) -> tuple[Line, Callable[[Conn], None]]:
        raise NotImplementedError

    def _watch_peers(self) -> None:
        loop_call = _threadsafe_caller()
        for peer in self.presence.peers():
            known = self._watches.get(peer.name)
            if known is not None and known.peer.presence_key == peer.presence_key:
                continue
            self._watches[peer.name] = PeerWatch(
                self.url, peer, lambda gone: loop_call(self._peer_gone, gone)
            )

    def _unreachable(
        self, run_id: str, peer: str, first: rec.RunStarted, lacking: list[str]
    ) -> None:
        """A run this controller cannot drive: left to a live controller that reaches its
        instruments; if none does, the lowest-named live controller claims and holds it."""
        if run_id in self._holding:
            return
        peers = self.presence.peers()
        needed = run_assets(first)
        if reaching([(p.name, set(p.assets)) for p in peers], needed):
            return  # a peer reaches it: that one takes it
        if min([p.name for p in peers] + [self.settings.name]) != self.settings.name:
            return  # the lowest-named survivor holds it
        clock = Clock(line_origin(self.settings.line))
        try:
            run = hold_unreachable(
                self.journal, run_id, me=self.settings.name, peer=peer, missing=lacking, clock=clock
            )
        except RunOwnedError:
            return
        except CellautoError as exc:
            log.warning("run %s of controller %s not held: %s", run_id, peer, exc)
            return
        self._holding[run_id] = (run, needed)
        held = unreachable_message(lacking, peer, own_world=first.simulated)
        self._say(f"run {run_id} held: {held}")

    def _hand_over(self) -> None:
        """Held runs a live peer now reaches: ``controller_released``, claim released."""
        if not self._holding:
            return
        peers = [(p.name, set(p.assets)) for p in self.presence.peers()]
        for run_id, (run, needed) in list(self._holding.items()):
            able = reaching(peers, needed)
            if not able:
                continue
            release_to(
                self.journal,
                run,
                me=self.settings.name,
                to=able[0],
                reason=f"controller {able[0]} reaches the run's instruments",
            )
            del self._holding[run_id]
            self._announce(run_id)
            self._say(f"run {run_id} handed over to controller {able[0]}")

    def _announce(self, run_id: str) -> None:
        """Wake the controllers: a run is free to take."""
        db.begin_write(self.conn)
        try:
            notify(self.conn, queue.QUEUE_CHANNEL, f"released:{run_id}")
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    async def _adopt_released(self) -> bool:
        """Resume the runs released unended that this controller reaches, within its
        capacity; whether every one was looked at (False: stopped at capacity)."""
        for run_id, by in released_unended(self.conn):
            if self._stopping or len(self._running) >= self.settings.capacity:
                return False
            if run_id in self._running or run_id in self._holding:
                continue
            async with self._resume_slots:
                self._resume(run_id, by, released=True)
        return True

    def _peer_gone(self, peer: ControllerRow) -> None:
        if self._stopping:
            return
        self._tg.start_soon(self._take_over, peer)

    async def _take_over(self, peer: ControllerRow) -> None:
        stopped = await anyio.to_thread.run_sync(self._peer_status, peer.name) == "stopped"
        if not stopped:
            await sleep_real(self.settings.grace_s)
        if self.presence.mark(peer, "lost"):
            log.warning("controller %s lost (its presence ended)", peer.name)
            self._say(f"controller {peer.name} lost")
        elif await anyio.to_thread.run_sync(self._peer_status, peer.name) == "live":
            # its control connection came back within the grace: a fresh presence key
            self._say(f"controller {peer.name} came back within the grace; its runs stay its own")
            self._watch_peers()
            return
        await self._adopt(peer.name)

    def _peer_status(self, name: str) -> str | None:
        with self.presence.lock:
            row = self.presence.conn.execute(
                "SELECT status FROM controllers WHERE name = %s", (name,)
            ).fetchone()
        return None if row is None else str(row[0])

    async def _sweep_lost(self) -> None:
        """At start and every ``sweep_s``: a live peer whose heartbeat is older than
        ``stale_s`` (on the server's clock: hung, or cut off with its session still open)
        is marked lost; the runs of controllers lost or stopped that nobody took over
        yet are taken over, and so are the runs this controller's name held in an earlier
        life (it crashed and was started again before a peer took them)."""
        now_ns = db.server_now_ns(self.conn)
        for peer in await anyio.to_thread.run_sync(self.presence.peers):
            stale = now_ns - peer.heartbeat_wall_ns >= self.settings.stale_s * 1e9
            if stale and self.presence.mark(peer, "lost"):
                self._say(f"controller {peer.name} lost (no heartbeat)")
        rows = self.conn.execute(
            "SELECT name FROM controllers WHERE status <> 'live' AND name <> ?",
            (self.settings.name,),
        ).fetchall()
        for name in [self.settings.name, *(str(name) for (name,) in rows)]:
            await self._adopt(name)

    async def _adopt(self, peer: str) -> None:
        back = settle_lost_peer(self.conn, peer)
        if back:
            self._wake.set()
        for run_id in survivor_order(self.settings.name, orphans(self.conn, peer)):
            if self._stopping or len(self._running) >= self.settings.capacity:
                break
            if run_id in self._running:
                continue
            async with self._resume_slots:
                self._resume(run_id, peer)

    def _resume(self, run_id: str, peer: str, *, released: bool = False) -> None:
        journal = self.journal
        started = journal.records(run_id, {RecordKind.RUN_STARTED})
        if not started or not isinstance(started[0].payload, rec.RunStarted):
            return
        first: rec.RunStarted = started[0].payload
        lacking = missing_assets(first, self.reached)
        if lacking:
            self._unreachable(run_id, peer, first, lacking)
            return
        protocol, why = self.shelf.find(first.protocol_name, first.protocol_source_sha256 or "")
        if protocol is None:
            log.warning("run %s of lost controller %s not resumed here: %s", run_id, peer, why)
            return
        clock = Clock(line_origin(self.settings.line))
        site: SimSite | FileSite | None = None
        try:
            line, check_line = self._pooled_line(run_id, first)  # its own unit of a pool
            site = resume_site(journal, run_id, protocol, line, clock, Location.parse(self.url))
            people = not line.rehearsal and first.operators == "people"
            with _owners.at_claim(run_id, check_line):
                execution = Runner(journal).resume(
                    protocol,
                    line,
                    run_id,
                    clock=clock,
                    answerers=[self.inbox] if people else [],
                    authority=self.inbox.authority() if people else None,
                    site=site,
                )
        except RunOwnedError:
            if site is not None:
                site.close()
            return  # another survivor took it first
        except Exception as exc:  # not resumed here, never the service's end
            if site is not None:
                site.close()
            if not isinstance(exc, CellautoError):
                log.exception("run %s of controller %s: resuming it failed", run_id, peer)
            self._say(f"run {run_id} of controller {peer} not resumed here: {exc}")
            return
        self.taken_over.append(run_id)
        how = f"(released by controller {peer})" if released else f"from controller {peer}"
        self._say(f"run {run_id} taken over {how}")
        self._execute(execution, self._tg, by=first.operator, closing=site.close)


def _threadsafe_caller() -> Any:
    """A function that calls ``f(*args)`` on the running loop from any thread."""
    loop = asyncio.get_running_loop()

    def call(function: Any, *args: Any) -> None:
        loop.call_soon_threadsafe(function, *args)

    return call
