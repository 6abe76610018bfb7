"""``cellauto controller``: a service that runs the queued batches of its line.

One process, one asyncio loop (at the line's speed), one :class:`~cellauto.records.Journal`
(one writer thread), one :class:`~cellauto.instruments.line.Line` opened once and
shared by its runs, one :class:`~cellauto.protocols.inbox.PeopleInbox`. It:

* registers in ``controllers`` and holds its presence lock
  (:class:`~cellauto.controller.presence.Presence`);
* takes queued runs of its line (:func:`~cellauto.controller.queue.take`, ``SKIP
  LOCKED``, within ``capacity``) when ``cellauto_queue`` is notified, when a run of its
  ends, and every ``sweep_s`` real seconds; runs each with the existing
  :class:`~cellauto.protocols.Runner`;
* watches each peer's presence; when one ends, after ``grace_s`` it takes the peer's
  runs it reaches over and resumes them (:mod:`cellauto.controller.takeover`), at most
  ``resume_at_once`` resumes being prepared at a time;
* on SIGTERM or SIGINT stops taking, stops its runs where they are (their claims
  released: a peer resumes them at once, without grace) and exits 0.
"""

from __future__ import annotations

import logging
import signal
import socket
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from anyio.abc import TaskGroup

from cellauto.cli.run_cmd import line_origin
from cellauto.cli.run_site import resume_site, run_site
from cellauto.clock import Clock, real_seconds
from cellauto.controller import queue, takeover
from cellauto.controller.presence import ControllerRow, PeerWatch, Presence
from cellauto.controller.reach import ProtocolShelf, line_assets, missing_assets, run_assets
from cellauto.errors import CellautoError, FencedError, RunOwnedError
from cellauto.lines import LineConfig
from cellauto.lines.wire import open_line
from cellauto.protocols import Runner
from cellauto.protocols.execution import Execution
from cellauto.protocols.inbox import PeopleInbox
from cellauto.protocols.params import build_params
from cellauto.records import Journal, RecordKind, _owners
from cellauto.records import backend as db
from cellauto.records import payloads as rec
from cellauto.records.backend import Conn, Location
from cellauto.records.backend.notify import ChangeFeed, notify, open_feed
from cellauto.records.run_journal import RunJournal
from cellauto.records.site_payloads import RunSubmitted

__all__ = ["ControllerService", "ControllerSettings"]

log = logging.getLogger(__name__)


@dataclass
class ControllerSettings:
    """What ``cellauto controller`` was given."""

    db: str
    line: LineConfig
    name: str = field(default_factory=socket.gethostname)
    capacity: int = 200
    protocols: Path = Path("protocols")
    grace_s: float = 2.0
    stale_s: float = 30.0
    sweep_s: float = 30.0
    """Real seconds between two looks at the queue without a notification."""
    resume_at_once: int = 16
    announce: Callable[[str], None] | None = None
    """Where the service says what it does (the command prints; default: the log)."""


class ControllerService:
    """One controller service (see the module doc)."""

    def __init__(self, settings: ControllerSettings) -> None:
        location = Location.parse(settings.db)
        if not location.is_postgresql:
            raise CellautoError(
                f"cellauto controller needs a PostgreSQL journal (--db postgresql://...), not "
                f"{settings.db!r}: on an SQLite journal one process runs a batch "
                "(`cellauto run`)"
            )
        if settings.capacity < 1:
            raise CellautoError(f"--capacity must be at least 1, not {settings.capacity}")
        self.settings = settings
        self.url = settings.db
        self.shelf = ProtocolShelf(settings.protocols)
        self._stopping = False
        self._wake = anyio.Event()
        self._running: dict[str, Execution] = {}
        self._watches: dict[str, PeerWatch] = {}
        self._holding: dict[str, tuple[RunJournal, set[str]]] = {}
        self._resume_slots = anyio.Semaphore(settings.resume_at_once)
        self.taken_over: list[str] = []

    def _say(self, text: str) -> None:
        if self.settings.announce is not None:
            self.settings.announce(text)
        else:
            log.info("%s", text)

    # -- the service ----------------------------------------------------------------------
    async def run(self) -> int:
        settings = self.settings
        config = settings.line
        async with AsyncExitStack() as stack:
            clock = Clock(line_origin(config))
            needed = self.shelf.equipment(config.equipment)
            self.line = line = await open_line(config, needed, stack, clock=clock)
            reached = line_assets(line.equipment)
            self.reached = reached
            _owners.set_controller_name(settings.name)
            stack.callback(_owners.set_controller_name, None)
            self.conn: Conn = db.open_backend(self.url).connect(create=False, timeout_s=10.0)
            stack.callback(self.conn.close)
            self.presence = Presence(
                self.url,
                name=settings.name,
                line=config.name,
                assets=reached,
                capacity=settings.capacity,
            )
            stack.callback(self._stop_presence)
            # closed before the presence ends: the claims are released before a peer,
            # seeing this controller stopped, takes its runs over
            self.journal = journal = Journal(self.url, owner_stale_s=settings.stale_s)
            stack.callback(journal.close)
            feed = open_feed(self.url, [queue.QUEUE_CHANNEL, "cellauto_controllers"])
            stack.callback(feed.close)
            self.inbox = inbox = PeopleInbox(journal)
            stack.callback(inbox.close)
            self._say(
                f"controller {settings.name} of line {config.name}: {len(needed)} instruments, "
                f"protocols {', '.join(self.shelf.names())}, capacity {settings.capacity}",
            )
            async with anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(self._on_signals, tg)
                tg.start_soon(inbox.run)
                tg.start_soon(self._listen, feed)
                tg.start_soon(self._heartbeats)
                self._watch_peers()
                await self._take_loop(tg)
                tg.cancel_scope.cancel()
        self._say(f"controller {settings.name} stopped")
        return 0

    def _stop_presence(self) -> None:
        for watch in self._watches.values():
            watch.stop()
        self.presence.stop()

    async def _on_signals(self, tg: TaskGroup) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                log.info("controller %s: signal %s, stopping", self.settings.name, signum)
                self._say(f"controller {self.settings.name}: stopping (signal {signum})")
                self._stopping = True
                self._wake.set()
                return

    async def _listen(self, feed: ChangeFeed) -> None:
        """Wake the take loop on a queue notification; watch controllers that register."""
        while True:
            changed = await anyio.to_thread.run_sync(feed.wait, 1.0, abandon_on_cancel=True)
            if not changed:
                continue
            if "cellauto_controllers" in changed:
                self._watch_peers()
                self._hand_over()
            if queue.QUEUE_CHANNEL in changed:
                self._wake.set()

    async def _heartbeats(self) -> None:
        while True:
            await anyio.sleep(real_seconds(max(self.settings.stale_s / 4, 0.5)))
            await anyio.to_thread.run_sync(self.presence.heartbeat)

    async def _take_loop(self, tg: TaskGroup) -> None:
        await self._sweep_lost()
        while not self._stopping:
            free = self.settings.capacity - len(self._running)
            for entry in queue.take(
                self.conn, line=self.settings.line.name, controller=self.settings.name, free=free
            ):
                self._start(entry, tg)
            await self._adopt_released()
            with anyio.move_on_after(real_seconds(self.settings.sweep_s)) as quiet:
                await self._wake.wait()
            self._wake = anyio.Event()
            if quiet.cancelled_caught:  # a missed notification, a takeover refused earlier
                await self._sweep_lost()
                self._hand_over()
        await self._stop_runs()

    async def _stop_runs(self) -> None:
        """SIGTERM: the runs stop where they are; the journal's close releases their
        claims (unended: a peer resumes them)."""
        for execution in list(self._running.values()):
            log.info("run %s: left to a peer (this controller stops)", execution.run_id)

    # -- runs -----------------------------------------------------------------------------
    def _start(self, entry: queue.QueueEntry, tg: TaskGroup) -> None:
        protocol, why = self.shelf.find(entry.protocol, entry.source_sha256)
        if protocol is None:
            queue.settle(self.conn, entry.run_id, "refused", why)
            return
        lacking = sorted(set(protocol.equipment()) - set(self.line.equipment))
        if lacking:
            queue.settle(
                self.conn,
                entry.run_id,
                "refused",
                f"line {self.settings.line.name} has no {', '.join(lacking)}",
            )
            return
        submitted = self._submission(entry)
        try:
            clock = Clock(line_origin(self.settings.line))
            params = build_params(protocol.params, entry.params, rehearsal=self.line.rehearsal)
            site = run_site(protocol, params, self.line, clock, False, self.url)
            people = not self.line.rehearsal
            execution = Runner(self.journal).prepare(
                protocol,
                self.line,
                params,
                run_id=entry.run_id,
                operator=submitted.by if submitted is not None else "queue",
                clock=clock,
                operators="people" if people else "simulated",
                answerers=[self.inbox] if people else [],
                authority=self.inbox.authority() if people else None,
                operator_account=submitted.signature if submitted is not None else None,
                site=site,
            )
        except CellautoError as exc:
            queue.settle(self.conn, entry.run_id, "refused", str(exc))
            log.warning("run %s refused: %s", entry.run_id, exc)
            return
        queue.settle(self.conn, entry.run_id, "started")
        self._say(f"run {entry.run_id} started ({protocol.name})")
        self._execute(execution, tg, by=submitted.by if submitted is not None else "queue")

    def _submission(self, entry: queue.QueueEntry) -> RunSubmitted | None:
        from cellauto.records.site_chain import read_site_record

        row = self.conn.execute(
            "SELECT source_seq FROM run_queue WHERE run_id = ?", (entry.run_id,)
        ).fetchone()
        if row is None:
            return None
        found = read_site_record(self.conn, int(row[0]))
        payload = getattr(found, "payload", None)
        return payload if isinstance(payload, RunSubmitted) else None

    def _execute(self, execution: Execution, tg: TaskGroup, *, by: str) -> None:
        self._running[execution.run_id] = execution
        self.inbox.register(execution)
        tg.start_soon(self._drive, execution, by)

    async def _drive(self, execution: Execution, by: str) -> None:
        run_id = execution.run_id
        try:
            outcome = await execution.execute(by=by)
            execution.close()
            self._say(f"run {run_id} ended {outcome.state.value}: {outcome.reason}")
        except FencedError as exc:
            log.warning("run %s taken over by another controller: %s", run_id, exc)
        except Exception:
            log.exception("run %s failed in controller %s", run_id, self.settings.name)
        finally:
            self.inbox.unregister(execution)
            self._running.pop(run_id, None)
            self._wake.set()

    # -- peers ----------------------------------------------------------------------------
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
        if takeover.reaching([(p.name, set(p.assets)) for p in peers], needed):
            return  # a peer reaches it: that one takes it
        if min([p.name for p in peers] + [self.settings.name]) != self.settings.name:
            return  # the lowest-named survivor holds it
        clock = Clock(line_origin(self.settings.line))
        try:
            run = takeover.hold_unreachable(
                self.journal, run_id, me=self.settings.name, peer=peer, missing=lacking, clock=clock
            )
        except RunOwnedError:
            return
        except CellautoError as exc:
            log.warning("run %s of controller %s not held: %s", run_id, peer, exc)
            return
        self._holding[run_id] = (run, needed)
        self._say(f"run {run_id} held: {takeover.unreachable_message(lacking, peer)}")

    def _hand_over(self) -> None:
        """Held runs a live peer now reaches: ``controller_released``, claim released."""
        if not self._holding:
            return
        peers = [(p.name, set(p.assets)) for p in self.presence.peers()]
        for run_id, (run, needed) in list(self._holding.items()):
            able = takeover.reaching(peers, needed)
            if not able:
                continue
            takeover.release_to(
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

    async def _adopt_released(self) -> None:
        for run_id, by in takeover.released_unended(self.conn):
            if self._stopping or len(self._running) >= self.settings.capacity:
                break
            if run_id in self._running or run_id in self._holding:
                continue
            async with self._resume_slots:
                self._resume(run_id, by, released=True)

    def _peer_gone(self, peer: ControllerRow) -> None:
        if self._stopping:
            return
        self._tg.start_soon(self._take_over, peer)

    async def _take_over(self, peer: ControllerRow) -> None:
        stopped = await anyio.to_thread.run_sync(self._peer_status, peer.name) == "stopped"
        if not stopped:
            await anyio.sleep(real_seconds(self.settings.grace_s))
        if self.presence.mark(peer, "lost"):
            log.warning("controller %s lost (its presence ended)", peer.name)
            self._say(f"controller {peer.name} lost")
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
        yet are taken over."""
        now_ns = db.server_now_ns(self.conn)
        for peer in await anyio.to_thread.run_sync(self.presence.peers):
            stale = now_ns - peer.heartbeat_wall_ns >= self.settings.stale_s * 1e9
            if stale and self.presence.mark(peer, "lost"):
                self._say(f"controller {peer.name} lost (no heartbeat)")
        rows = self.conn.execute(
            "SELECT name FROM controllers WHERE status <> 'live' AND name <> ?",
            (self.settings.name,),
        ).fetchall()
        for (name,) in rows:
            await self._adopt(str(name))

    async def _adopt(self, peer: str) -> None:
        back = takeover.settle_lost_peer(self.conn, peer)
        if back:
            self._wake.set()
        for run_id in takeover.survivor_order(
            self.settings.name, takeover.orphans(self.conn, peer)
        ):
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
        try:
            site = resume_site(journal, run_id, protocol, self.line, clock, self.url)
            people = not self.line.rehearsal and first.operators == "people"
            execution = Runner(journal).resume(
                protocol,
                self.line,
                run_id,
                clock=clock,
                answerers=[self.inbox] if people else [],
                authority=self.inbox.authority() if people else None,
                site=site,
            )
        except RunOwnedError:
            return  # another survivor took it first
        except CellautoError as exc:
            log.warning("run %s of lost controller %s not resumed: %s", run_id, peer, exc)
            return
        self.taken_over.append(run_id)
        how = f"(released by controller {peer})" if released else f"from controller {peer}"
        self._say(f"run {run_id} taken over {how}")
        self._execute(execution, self._tg, by=first.operator)


def _threadsafe_caller() -> Any:
    """A function that calls ``f(*args)`` on the running loop from any thread."""
    import asyncio

    loop = asyncio.get_running_loop()

    def call(function: Any, *args: Any) -> None:
        loop.call_soon_threadsafe(function, *args)

    return call
