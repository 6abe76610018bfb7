"""The live updates' hub: one poller thread follows the journal, the open pages listen.

The poller (a thread of its own, with its own connections) waits on the
:class:`~cellauto.web.changes.ChangeSource`, updates the :class:`LineModel` and hands
what changed to the event loop. There each *topic* is published at most once per
``coalesce_s`` (a run writing twenty readings in a burst gives one row update): the
payload is rendered once and the same event put on every subscriber's queue. Topics:

``overview``  ``row`` events, one per changed run: ``{"run", "html", "last_wall_ns"}``
``counts``    ``{"tasks", "alarms", "new_tasks"}``: the badges and notifications
``run:<id>``  ``{"run", "seq", "state"}``: anything new in that run
``tasks``     ``{}``: the open tasks changed (the page refetches its fragment)
``alarms``    ``{}``: an alarm was raised or acknowledged

A subscriber's queue is bounded: one that falls :data:`QUEUE_EVENTS` behind is dropped
(its stream ends; the browser reconnects and re-reads the page's state).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anyio
import orjson

from cellauto.records.backend import Conn, Location
from cellauto.web.changes import ChangeSource, change_source_for, open_reader
from cellauto.web.line_model import Dirty, LineModel, RunView

__all__ = ["QUEUE_EVENTS", "TOPICS", "ChangeHub", "Event", "Subscription", "parse_topics"]

_log = logging.getLogger(__name__)

QUEUE_EVENTS = 64
TOPICS = ("overview", "counts", "tasks", "alarms")
OWNERS_EVERY_S = 5.0
MAX_RETRY_S = 5.0
"""How often the controllers' heartbeats are looked at when nothing else changes."""


@dataclass(frozen=True)
class Event:
    """One server-sent event: its name and its JSON data."""

    name: str
    data: str

    def encode(self) -> bytes:
        return f"event: {self.name}\ndata: {self.data}\n\n".encode()


def parse_topics(text: str) -> frozenset[str]:
    """The topics of ``?topics=`` (comma or space separated); unknown ones are ignored,
    ``run:<id>`` needs an id of letters, digits and dashes."""
    found = set()
    for part in text.replace(",", " ").split():
        if part in TOPICS or (
            part.startswith("run:")
            and 0 < len(part) - 4 <= 64
            and all(c.isalnum() or c in "-_" for c in part[4:])
        ):
            found.add(part)
    return frozenset(found)


class Subscription:
    """One open stream's events; iterate with :meth:`next`."""

    def __init__(self, hub: ChangeHub, topics: frozenset[str]) -> None:
        self.hub = hub
        self.topics = topics
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize=QUEUE_EVENTS)
        self.ended = False

    def put(self, event: Event | None) -> None:
        """Queue ``event`` (None: end the stream); a full queue ends it too."""
        if self.ended:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            _log.info("dropping an event stream %d events behind", QUEUE_EVENTS)
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(None)
            event = None
        if event is None:
            self.ended = True
            self.hub.unsubscribe(self)

    async def next(self, timeout_s: float) -> Event | None:
        """The next event; None after ``timeout_s`` without one. Raises
        :class:`EOFError` once the stream was ended (dropped, or the server stops)."""
        try:
            with anyio.fail_after(timeout_s):
                event = await self.queue.get()
        except TimeoutError:
            if self.ended and self.queue.empty():
                raise EOFError("the event stream ended") from None
            return None
        if event is None:
            raise EOFError("the event stream ended")
        return event

    def close(self) -> None:
        self.ended = True
        self.hub.unsubscribe(self)


class ChangeHub:
    """The journal's changes, fanned out to the open streams by topic."""

    def __init__(
        self,
        db: Path | Location,
        *,
        poll_s: float = 0.1,
        coalesce_s: float = 0.25,
        render_row: Callable[[RunView], str] = lambda view: view.run_id,
    ) -> None:
        self.db = db
        self.poll_s = poll_s
        self.coalesce_s = coalesce_s
        self.render_row = render_row
        self.model = LineModel()
        self.lock = threading.Lock()
        self._subs: set[Subscription] = set()
        self._wanted: dict[str, int] = {}
        self._source: ChangeSource | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[str, Dirty] = {}
        self._scheduled: set[str] = set()
        self._sent_at: dict[str, float] = {}
        self.changes_seen = 0
        self._stopping = threading.Event()
        self._owners_at = time.monotonic()
        self._untold = Dirty()  # applied to the model, not yet told to the loop
        self._refresh_due = False  # rows applied since the last refresh that worked
        self._site_unread = False  # the site chain moved since that refresh
        self.failure: str | None = None
        """Why the journal's changes cannot be read now (None: the pages are live)."""

    # -- life ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Read the line once (the overview's startup scan), then follow the journal."""
        self._loop = asyncio.get_running_loop()
        source = change_source_for(self.db, poll_s=self.poll_s)

        def scan() -> None:
            position = source.start()
            conn = open_reader(self.db, any_thread=True)
            try:
                with self.lock:
                    self.model.scan(conn, position.rowid)
            finally:
                conn.close()

        await anyio.to_thread.run_sync(scan)
        self._source = source
        self._thread = threading.Thread(target=self._poll, name="cellauto-changes", daemon=True)
        self._thread.start()

    def end_streams(self) -> None:
        """End every open stream (the server is stopping); call on the loop."""
        for sub in list(self._subs):
            sub.put(None)

    async def stop(self) -> None:
        self.end_streams()
        self._stopping.set()
        if self._source is not None:
            self._source.interrupt()
        thread, self._thread = self._thread, None
        if thread is not None:
            await anyio.to_thread.run_sync(thread.join)

    # -- the poller thread --------------------------------------------------------------
    def _poll(self) -> None:
        """Follow the journal until stopped. No error ends it: a failed read is logged
        (once per kind of failure), shown on the pages (:attr:`failure`), and tried
        again on a fresh connection, waiting longer each time (up to 5 s)."""
        source = self._source
        assert source is not None
        conn: Conn | None = None
        wait_s = self.poll_s
        try:
            while not self._stopping.is_set():
                try:
                    if conn is None:
                        conn = open_reader(self.db)
                    self._step(source, conn)
                except Exception as exc:
                    what = f"{type(exc).__name__}: {exc}"
                    if what != self.failure:
                        _log.warning("reading the journal's changes failed (%s); retrying", what)
                    self.failure = what
                    if conn is not None:
                        conn.close()
                        conn = None
                    source.reset()
                    self._stopping.wait(wait_s)
                    wait_s = min(wait_s * 2, MAX_RETRY_S)
                else:
                    if self.failure is not None:
                        _log.warning("the journal's changes are read again")
                    self.failure, wait_s = None, self.poll_s
        finally:
            if conn is not None:
                conn.close()
            source.close()

    def _step(self, source: ChangeSource, conn: Conn) -> None:
        """Wait for one change (or a second), bring the model up to date, tell the loop."""
        change = source.wait(1.0)
        if self._stopping.is_set():
            return
        now_ns = time.time_ns()
        with self.lock:
            if change is not None:
                # kept until told: a refresh that fails after the rows were applied (the
                # source has moved past them) loses neither their events nor a site move
                self.changes_seen += 1
                self._untold.merge(self.model.apply(change.rows))
                self._site_unread |= change.site_seq is not None
                self._refresh_due = True
            if self._refresh_due:
                moved = self._site_unread
                self._untold.merge(self.model.refresh(conn, site_moved=moved, now_ns=now_ns))
                self._refresh_due = self._site_unread = False
                self._owners_at = time.monotonic()
            elif time.monotonic() - self._owners_at >= OWNERS_EVERY_S:
                self._untold.merge(self.model.owners(conn, now_ns))
                self._owners_at = time.monotonic()
            dirty, self._untold = self._untold, Dirty()
        if dirty and self._loop is not None:
            self._loop.call_soon_threadsafe(self._dirty, dirty)

    # -- on the loop ----------------------------------------------------------------------
    def subscribe(self, topics: frozenset[str]) -> Subscription:
        sub = Subscription(self, topics)
        self._subs.add(sub)
        for topic in topics:
            self._wanted[topic] = self._wanted.get(topic, 0) + 1
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub not in self._subs:
            return
        self._subs.discard(sub)
        for topic in sub.topics:
            left = self._wanted.get(topic, 1) - 1
            if left > 0:
                self._wanted[topic] = left
            else:
                self._wanted.pop(topic, None)

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def _dirty(self, dirty: Dirty) -> None:
        topics: dict[str, Dirty] = {}
        if dirty.runs:
            topics["overview"] = Dirty(runs=set(dirty.runs))
        if dirty.tasks or dirty.alarms:
            topics["counts"] = Dirty(new_tasks=list(dirty.new_tasks))
        if dirty.tasks:
            topics["tasks"] = Dirty()
        if dirty.alarms:
            topics["alarms"] = Dirty()
        for run_id in dirty.run_heads:
            topics[f"run:{run_id}"] = Dirty()
        for topic, part in topics.items():
            if topic not in self._wanted:
                continue
            held = self._pending.setdefault(topic, Dirty())
            held.merge(part)
            if topic in self._scheduled:
                continue
            self._scheduled.add(topic)
            assert self._loop is not None
            wait = self._sent_at.get(topic, -1e9) + self.coalesce_s - self._loop.time()
            self._loop.call_later(max(0.0, wait), self._flush, topic)

    def _flush(self, topic: str) -> None:
        assert self._loop is not None
        self._scheduled.discard(topic)
        dirty = self._pending.pop(topic, Dirty())
        self._sent_at[topic] = self._loop.time()
        listeners = [s for s in self._subs if topic in s.topics]
        if not listeners:
            return
        for event in self._events(topic, dirty):
            for sub in listeners:
                sub.put(event)

    def _events(self, topic: str, dirty: Dirty) -> list[Event]:
        if topic == "overview":
            with self.lock:
                views = [self.model.view(r) for r in sorted(dirty.runs) if r in self.model.runs]
            return [Event("row", _json(self._row(v))) for v in views]
        if topic == "counts":
            with self.lock:
                tasks, alarms = self.model.counts()
            data = {"tasks": tasks, "alarms": alarms, "new_tasks": dirty.new_tasks}
            return [Event("counts", _json(data))]
        if topic.startswith("run:"):
            run_id = topic[4:]
            with self.lock:
                row = self.model.runs.get(run_id)
                data = {"run": run_id, "seq": row.last_seq, "state": row.state} if row else {}
            return [Event("run", _json(data))] if data else []
        return [Event(topic, "{}")]

    def _row(self, view: RunView) -> dict[str, object]:
        html = self.render_row(view)
        return {"run": view.run_id, "html": html, "last_wall_ns": view.last_wall_ns}

    # -- reading the model (pages) ----------------------------------------------------------
    def overview(self, *, every: bool) -> tuple[list[RunView], int, int]:
        """The overview's rows and the line's (open tasks, unacknowledged alarms)."""
        with self.lock:
            rows = self.model.listed(every=every, now_ns=time.time_ns())
            tasks, alarms = self.model.counts()
        return rows, tasks, alarms


def _json(data: object) -> str:
    return orjson.dumps(data).decode()
