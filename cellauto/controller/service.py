"""``cellauto controller``: a service that runs the queued batches of its line.

One process, one asyncio loop (at the line's speed), one :class:`~cellauto.records.Journal`
(one writer thread), one :class:`~cellauto.instruments.line.Line` opened once and
shared by its runs, one :class:`~cellauto.protocols.inbox.PeopleInbox`. (A rehearsal
line file with ``[simulation] line_per_run = true``: each run on a simulated line of
its own, :mod:`cellauto.controller.run_line`, on a virtual-time loop.) It:

* registers in ``controllers`` and holds its presence lock
  (:class:`~cellauto.controller.presence.Presence`);
* takes queued runs of its line (:func:`~cellauto.controller.queue.take`, ``SKIP
  LOCKED``, within ``capacity``) when ``cellauto_queue`` is notified, when a run of its
  ends, and every ``sweep_s`` real seconds; runs each with the existing
  :class:`~cellauto.protocols.Runner`;
* watches each peer's presence; when one ends, after ``grace_s`` it takes the peer's
  runs it reaches over and resumes them (:mod:`cellauto.controller.takeover`), at most
  ``resume_at_once`` resumes being prepared at a time;
* fences itself when it cannot commit to the journal for ``self_fence_s`` (its runs
  stay where they are, for a peer to resume; exit status 3:
  :mod:`cellauto.controller.fencing`);
* on SIGTERM or SIGINT stops taking, stops its runs where they are (their claims
  released: a peer resumes them at once, without grace) and exits 0.
"""

from __future__ import annotations

import functools
import logging
import signal
import socket
import sqlite3
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.lowlevel
import anyio.to_thread
import psycopg
from anyio.abc import TaskGroup

from cellauto.cli.run_cmd import line_origin
from cellauto.clock import Clock, move_on_after_real, sleep_real
from cellauto.controller import queue
from cellauto.controller.fencing import (
    EXIT_FENCED,
    SelfFence,
    check_self_fence,
    exit_fenced,
    with_user_timeout,
)
from cellauto.controller.presence import PeerWatch, Presence
from cellauto.controller.reach import ProtocolShelf, line_assets
from cellauto.controller.run_line import RunLine, line_for_run
from cellauto.controller.takeover import Takeovers
from cellauto.controller.units import RunUnits
from cellauto.errors import CellautoError, FencedError
from cellauto.instruments.line import Line
from cellauto.lines import LineConfig
from cellauto.lines.wire import open_line
from cellauto.protocols import Runner
from cellauto.protocols.definition import Protocol
from cellauto.protocols.execution import Execution
from cellauto.protocols.holds_local import journal_alive
from cellauto.protocols.inbox import PeopleInbox
from cellauto.protocols.params import Params, build_params
from cellauto.records import Journal, _owners
from cellauto.records import asset_holds as table
from cellauto.records import backend as db
from cellauto.records import payloads as rec
from cellauto.records.backend import Conn, Location
from cellauto.records.backend.notify import ChangeFeed, open_feed
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
    self_fence_s: float = 10.0
    """Real seconds without a successful commit after which the controller fences itself."""
    sweep_s: float = 30.0
    """Real seconds between two looks at the queue without a notification."""
    resume_at_once: int = 16
    announce: Callable[[str], None] | None = None
    """Where the service says what it does (the command prints; default: the log)."""


class ControllerService(Takeovers):
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
        check_self_fence(settings.self_fence_s, grace_s=settings.grace_s, stale_s=settings.stale_s)
        self.settings = settings
        self.url = with_user_timeout(settings.db)  # a call on a dead link fails, never hangs
        self.shelf = ProtocolShelf(settings.protocols)
        self._stopping = False
        self._wake = anyio.Event()
        self._look_released = True
        """Look for runs released unended at the take loop's next turn: at start, on a
        queue notification, at a sweep, and until every one was looked at."""
        self._running: dict[str, Execution] = {}
        self._watches: dict[str, PeerWatch] = {}
        self._holding: dict[str, tuple[RunJournal, set[str]]] = {}
        self._resume_slots = anyio.Semaphore(settings.resume_at_once)
        self.taken_over: list[str] = []
        self.exit_status = 0

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
            self.units = RunUnits(line, settings.name, now_ns=lambda: round(clock.now_s() * 1e9))
            reached = line_assets(line.instruments())  # a pool's units each
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
            self.journal = journal = Journal(
                self.url,
                owner_stale_s=settings.stale_s,
                owner_heartbeat_s=settings.self_fence_s / 4,
            )
            self.fence = SelfFence(
                settings.self_fence_s, commit_age_s=journal.commit_age_s, on_fence=self._fenced
            )
            self.fence.start()
            # stopped after the journal's close: a close that cannot commit is fenced too
            stack.callback(self.fence.stop)
            stack.callback(journal.close)
            feed = open_feed(self.url, [queue.QUEUE_CHANNEL, "cellauto_controllers"])
            stack.callback(feed.close)
            self.inbox = inbox = PeopleInbox(journal, real_time_polls=True)
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
        return self.exit_status

    def _fenced(self, why: str) -> None:
        """The watchdog thread: this controller cannot reach the journal; it ends now."""
        self._say(
            f"controller {self.settings.name} fenced itself: {why} (--self-fence-s "
            f"{self.settings.self_fence_s:g}); its runs stay where they are for a peer to "
            f"resume; exiting with status {EXIT_FENCED}"
        )
        exit_fenced()

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
                self._look_released = True  # a held run handed over notifies it too
                self._wake.set()

    async def _heartbeats(self) -> None:
        """Every ``self_fence_s / 4`` (the self-fence counts from the last that succeeded);
        a controller its peers marked lost (it hung: its runs are
        theirs now, and its own commits for them are fenced) stops, exit status 1, for
        its supervisor to start it again."""
        settings = self.settings
        every_s = min(settings.stale_s, settings.self_fence_s) / 4
        while True:
            await sleep_real(max(every_s, 0.05))
            try:
                live = await anyio.to_thread.run_sync(self.presence.heartbeat)
            except psycopg.Error as exc:  # the control connection dropped: take it again
                log.warning("controller %s: heartbeat failed: %s", settings.name, exc)
                try:  # the self-fence decides when to give up
                    live = await anyio.to_thread.run_sync(self.presence.retake)
                except psycopg.Error as again:
                    log.warning("controller %s: presence not taken again: %s", settings.name, again)
                    continue
                if live:
                    self._say(
                        f"controller {settings.name}: control connection dropped and made "
                        "again within the grace; presence taken again, its runs kept"
                    )
            self.fence.presence_ok()
            if not live:
                self._say(
                    f"controller {self.settings.name} was marked lost by its peers (no "
                    f"heartbeat for {self.settings.stale_s:g} s): its runs are theirs; stopping"
                )
                self.exit_status = 1
                self._stopping = True
                self._wake.set()
                return

    async def _take_loop(self, tg: TaskGroup) -> None:
        await self._sweep_lost()
        while not self._stopping:
            try:
                settings = self.settings
                free = settings.capacity - len(self._running)
                line = settings.line.name
                admit = self._admit if self.line.pools else None  # a unit of each pool
                taken = queue.take(
                    self.conn, line=line, controller=settings.name, free=free, admit=admit
                )
                for entry in taken:
                    self._start(entry, tg)
                    # one run prepared at a time, the loop served between: starting hundreds
                    # must not starve the heartbeats (the self-fence counts from them)
                    await anyio.lowlevel.checkpoint()
                if self._look_released:  # not after every run's end: it reads every owner row
                    self._look_released = not await self._adopt_released()
            except (sqlite3.Error, psycopg.Error) as exc:  # the self-fence decides when to stop
                log.warning("controller %s: the journal: %s; tried again", self.settings.name, exc)
            with move_on_after_real(self.settings.sweep_s) as quiet:
                await self._wake.wait()
            self._wake = anyio.Event()
            if quiet.cancelled_caught:  # a missed notification, a takeover refused earlier
                self._look_released = True
                try:
                    await self._sweep_lost()
                    self._hand_over()
                except (sqlite3.Error, psycopg.Error) as exc:
                    log.warning("controller %s: sweep: %s", self.settings.name, exc)
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
            self._refuse(entry.run_id, why or "")
            return
        lacking = sorted(set(protocol.equipment()) - {*self.line.equipment, *self.line.pools})
        if lacking:
            why = f"line {self.settings.line.name} has no {', '.join(lacking)}"
            self._refuse(entry.run_id, why)
            return
        submitted = self._submission(entry)
        run_line: RunLine | None = None
        try:
            clock = Clock(line_origin(self.settings.line))
            line, check_line = self._pooled_line(entry.run_id)
            params = build_params(protocol.params, entry.params, rehearsal=line.rehearsal)
            run_line = self._line_for_run(line, protocol, params, clock, entry.run_id, submitted)
            people = not run_line.line.rehearsal
            started = functools.partial(
                queue.mark_started, run_id=entry.run_id, controller=self.settings.name
            )
            # its row goes started with the claim, which checks the run's units
            with (
                _owners.at_claim(entry.run_id, started),
                _owners.at_claim(entry.run_id, check_line),
            ):
                execution = Runner(self.journal).prepare(
                    protocol,
                    run_line.line,
                    params,
                    seed=run_line.seed,
                    run_id=entry.run_id,
                    operator=submitted.by if submitted is not None else "queue",
                    clock=clock,
                    operators="people" if people else "simulated",
                    answerers=[self.inbox] if people else run_line.answerers,
                    authority=self.inbox.authority() if people else None,
                    operator_account=submitted.signature if submitted is not None else None,
                    site=run_line.site,
                )
        except Exception as exc:  # refused, never the service's end
            if run_line is not None:
                run_line.close()
            if not isinstance(exc, CellautoError):
                log.exception("run %s: preparing it failed", entry.run_id)
            self._refuse(entry.run_id, f"{type(exc).__name__}: {exc}")
            return
        self._say(f"run {entry.run_id} started ({protocol.name})")
        by = submitted.by if submitted is not None else "queue"
        self._execute(execution, tg, by=by, closing=run_line.close)

    def _line_for_run(
        self,
        line: Line,
        protocol: Protocol,
        params: Params,
        clock: Clock,
        run_id: str,
        submitted: RunSubmitted | None,
    ) -> RunLine:
        """The one place a new run's line is chosen (:mod:`cellauto.controller.run_line`):
        ``line`` (the controller's, with the run's units of its pools), or one of its own."""
        return line_for_run(
            self.settings.line,
            line,
            protocol,
            params,
            clock,
            Location.parse(self.url),
            run_id=run_id,
            seed=submitted.seed if submitted is not None else None,
        )

    def _refuse(self, run_id: str, why: str) -> None:
        queue.settle(self.conn, run_id, "refused", why)
        self.units.release(self.conn, run_id, self._owners_alive)  # the units bound at its take
        self._say(f"run {run_id} refused: {why}")

    def _owners_alive(self, conn: Conn) -> table.Alive:
        """Whether a shared instrument's ticket is of a run still held (its owner live)."""
        return journal_alive(self.journal, conn)

    def _admit(self, conn: Conn, entry: queue.QueueEntry) -> bool:
        """In the taking transaction: bind the run to a free unit of each pool its
        protocol needs; False (it stays queued) when a pool has none free."""
        protocol, _ = self.shelf.find(entry.protocol, entry.source_sha256)
        return self.units.bind(conn, entry.run_id, self.units.needs(protocol))

    def _pooled_line(
        self, run_id: str, started: rec.RunStarted | None = None
    ) -> tuple[Line, Callable[[Conn], None]]:
        """The controller's line as a run sees it: each pool the
        unit the run is bound to (a new run: at its take; a resumed one, ``started`` its
        ``run_started``: the unit it holds); with the check its claim makes of it (an op
        of :func:`cellauto.records._owners.at_claim`)."""
        bound = self.units.of_run(self.conn, run_id, started)
        return self.units.line_for(bound), self.units.at_claim(run_id, bound)

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

    def _execute(
        self,
        execution: Execution,
        tg: TaskGroup,
        *,
        by: str,
        closing: Callable[[], None] | None = None,
    ) -> None:
        """Drive the run; ``closing`` when it ends here (its line's site)."""
        self._running[execution.run_id] = execution
        self.inbox.register(execution)
        tg.start_soon(self._drive, execution, by, closing)

    async def _drive(
        self, execution: Execution, by: str, closing: Callable[[], None] | None
    ) -> None:
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
            if closing is not None:
                closing()
            self.units.release_ended(self.conn, run_id, self._owners_alive)
            self._wake.set()

    # -- peers ----------------------------------------------------------------------------
