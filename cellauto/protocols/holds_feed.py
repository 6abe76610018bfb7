"""Waking a run that waits for a shared instrument when another process grants it.

On PostgreSQL every commit that grants a ticket of ``asset_holds`` announces it on the
``cellauto_assets`` channel (:func:`cellauto.records.asset_holds.granted_payload`),
delivered to listeners when the commit is. While runs of this process wait on such a
journal, one thread listens (a :class:`~cellauto.records.backend.notify.ChangeFeed` on a
connection of its own) and wakes the waiters whose tickets were granted, on their event
loop: a run waiting behind another controller is woken by that controller's release,
not by its next poll. The thread ends when no run of this process waits any more.

A notification may come before the waiter has registered its ticket (the grant followed
its request at once): tickets of runs that are asking are woken all the same (the event
waits for them, set). If the listening connection drops, every waiter is woken: each
reads its ticket and waits again (nothing is lost in the gap).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
from collections.abc import Callable

from cellauto.records.asset_holds import CHANNEL, granted_tickets
from cellauto.records.backend import Location
from cellauto.records.backend.notify import ChangeFeed, open_feed

__all__ = ["AssetListener"]

log = logging.getLogger(__name__)

LISTEN_TIMEOUT_S = 0.5
"""Real seconds the listening thread waits for a notification before it looks whether
anyone still waits (the thread ends when nobody does)."""


class AssetListener:
    """Listens on ``cellauto_assets`` of one PostgreSQL journal while ``waiting()`` is true.

    ``wake(tickets)`` runs on ``loop`` for every grant heard; ``wake(None)`` when the
    connection dropped (anything may have been granted meanwhile).
    """

    def __init__(
        self,
        location: Location,
        waiting: Callable[[], bool],
        wake: Callable[[list[str] | None], None],
    ) -> None:
        self._location = location
        self._waiting = waiting
        self._wake = wake
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._listening = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.delivered: collections.deque[str] = collections.deque(maxlen=1000)
        """The latest tickets whose grants it passed on (for tests and logs)."""

    def start(self, loop: asyncio.AbstractEventLoop) -> threading.Event:
        """Listen (if not already); the event is set once the LISTEN is in force (or
        could not be: then :meth:`listening` says no)."""
        with self._lock:
            self._loop = loop
            if self._thread is None:
                ready = self._ready = threading.Event()
                self._listening = False
                self._thread = threading.Thread(
                    target=self._listen,
                    args=(ready,),
                    name="cellauto-assets-listener",
                    daemon=True,
                )
                self._thread.start()
            return self._ready

    def listening(self) -> bool:
        """Whether its LISTEN is in force."""
        with self._lock:
            return self._thread is not None and self._listening

    def _listen(self, ready: threading.Event) -> None:
        me = threading.current_thread()
        feed = None
        try:
            feed = open_feed(self._location, [CHANNEL])
            with self._lock:
                self._listening = True
            ready.set()
            self._serve(feed)
        except Exception as exc:  # the server gone (or going): the waiters poll
            log.warning(
                "stopped listening on %s for shared instruments (%s): runs waiting for "
                "one read their tickets every poll_s until a run waits again",
                self._location,
                exc,
            )
        finally:
            with self._lock:
                if self._thread is me:
                    self._thread = None
                    self._listening = False
            ready.set()
            if feed is not None:
                with contextlib.suppress(Exception):
                    feed.close()

    def _serve(self, feed: ChangeFeed) -> None:
        while True:
            got = feed.wait(LISTEN_TIMEOUT_S)
            with self._lock:
                loop = self._loop
                if got is None and not self._waiting():
                    self._thread = None  # the next waiter starts another listener
                    self._listening = False
                    return
            if got is None or loop is None:
                continue
            tickets = granted_tickets(feed.payloads) if feed.payloads else None
            if tickets == []:
                continue
            self.delivered.extend(tickets or ())
            with contextlib.suppress(RuntimeError):  # its loop closed: nobody waits there
                loop.call_soon_threadsafe(self._wake, tickets)
