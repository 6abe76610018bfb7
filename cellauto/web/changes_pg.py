"""The web app's :class:`~cellauto.web.changes.ChangeSource` on a PostgreSQL journal.

Every writer commit that adds records notifies ``cellauto_changes`` inside its transaction
with each run's first and last seq (:func:`~cellauto.records.backend.notify.announce_changes`);
:class:`PgChanges` listens (``LISTEN``, :func:`~cellauto.records.backend.notify.open_feed`)
and reads the rows of the runs named **by run and seq**, never by ``id`` (design of
issue 15, §4.6): with several controllers committing at once, identity values are drawn at
insert time and committed in another order, so a reader that advanced past the highest
``id`` it saw would skip a row of another controller still in flight. A run's seqs are
committed in order (its one controller, under the fence), so ``seq > last seq read`` loses
nothing.

Its position is ``{run_id: last seq read}`` plus the site chain's head. When the listening
connection drops, the feed connects again and this source reads every run whose stored
head is past its position (nothing is lost in the gap); every ``fallback_s`` without a
notification it reads every run whose head moved, the site head and the tasks anyway (a
writer of an older release notifies nothing; a notification lost costs at most that period).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from cellauto.records import backend as db
from cellauto.records.backend import Conn, Location
from cellauto.records.backend.notify import ChangeFeed, open_feed, parse_changes
from cellauto.web.changes import OVERVIEW_KINDS, PAGE_ROWS, Change, NewRow, Position

__all__ = ["FALLBACK_S", "PgChanges"]

FALLBACK_S = 5.0
"""Seconds without a notification after which the site head and tasks are looked at."""

CHANNELS = ("cellauto_changes", "cellauto_requests")

_ROWS = (
    "SELECT r.id, r.run_id, r.seq, r.kind, r.process_time_s, r.wall_time_ns,"
    " CASE WHEN r.kind = ANY(?) THEN r.body END"
    " FROM records r JOIN unnest(?::text[], ?::bigint[]) AS u(run_id, after)"
    " ON r.run_id = u.run_id AND r.seq > u.after"
    " ORDER BY r.run_id, r.seq LIMIT ?"
)
_HEADS = (
    "WITH RECURSIVE runs(run_id) AS ("
    " (SELECT run_id FROM records WHERE run_id IS NOT NULL ORDER BY run_id LIMIT 1)"
    " UNION ALL"
    " SELECT (SELECT r.run_id FROM records r WHERE r.run_id > runs.run_id"
    " ORDER BY r.run_id LIMIT 1) FROM runs WHERE runs.run_id IS NOT NULL)"
    " SELECT run_id, (SELECT max(r.seq) FROM records r WHERE r.run_id = runs.run_id)"
    " FROM runs WHERE run_id IS NOT NULL"
)
"""Every run's head: a skip scan of the ``(run_id, seq)`` index, one probe per run (not a
scan of every record), so the fallback can afford it every :data:`FALLBACK_S`."""
_SITE_HEAD = "SELECT max(seq) FROM site_records"

NO_SEQ = -1
"""The position of a run none of whose records was read yet (seqs start at 0 or 1)."""


class PgChanges:
    """:class:`~cellauto.web.changes.ChangeSource` over a PostgreSQL journal (module doc)."""

    def __init__(self, location: Location, *, fallback_s: float = FALLBACK_S) -> None:
        if location.url is None:
            raise ValueError(f"PgChanges follows a PostgreSQL journal, not {location}")
        self.location = location
        self.fallback_s = fallback_s
        self.after: dict[str, int] = {}
        """Run -> the last seq delivered."""
        self._site: int | None = None
        self._conn: Conn | None = None
        self._feed: ChangeFeed | None = None
        self._reconnects_seen = 0
        self._catch_up = False  # read every run's head on the next wait
        self._quiet_since = time.monotonic()
        self._stop = threading.Event()

    # -- connections
    def _connection(self) -> Conn:
        if self._conn is None:
            self._conn = db.open_backend(self.location).connect_read_only(
                any_thread=True, query_only=True
            )
        return self._conn

    def _listening(self) -> ChangeFeed:
        if self._feed is None:
            assert self.location.url is not None
            self._feed = open_feed(self.location.url, CHANNELS)
            self._reconnects_seen = 0
            self._catch_up = True  # notifications before it listened were not heard
        return self._feed

    # -- the protocol
    def start(self) -> Position:
        """Listen, then read every run's head and the site head in one snapshot: rows
        committed after it are notified to the feed already listening."""
        self._listening()
        conn = self._connection()
        db.begin_read(conn)
        try:
            self.after = {str(run): int(seq) for run, seq in conn.execute(_HEADS)}
            row = conn.execute("SELECT max(id) FROM records").fetchone()
            self._site = _site_head(conn)
        finally:
            db.end_read(conn)
        self._catch_up = False
        self._quiet_since = time.monotonic()
        return Position(int(row[0]) if row and row[0] is not None else 0, self._site)

    def wait(self, timeout_s: float) -> Change | None:
        """The rows of the runs notified (or, after a reconnect, of every run past its
        position), the site head if it moved; None when nothing came in ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while not self._stop.is_set():
            feed = self._listening()
            if self._catch_up:
                return self._read(None, site=True)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            channels = feed.wait(min(left, 0.25))  # short slices: interrupt() is seen
            reconnects = getattr(feed, "reconnects", 0)
            if reconnects != self._reconnects_seen:
                self._reconnects_seen = reconnects
                return self._read(None, site=True)  # the gap: read everything since
            if channels is None:
                if time.monotonic() - self._quiet_since >= self.fallback_s:
                    # a notification lost (or never sent) costs at most this period:
                    # every run whose head is past its position is read, not the site only
                    return self._read(None, site=True)
                continue
            runs: dict[str, int] = {}
            site = "cellauto_requests" in channels
            for channel, payload in feed.payloads:
                if channel != "cellauto_changes":
                    continue
                parsed = parse_changes(payload)
                if parsed is None:  # unreadable: read everything since
                    return self._read(None, site=True)
                spans, moved = parsed
                site = site or moved
                for run_id, _first, _last in spans:
                    runs.setdefault(run_id, self.after.get(run_id, NO_SEQ))
            return self._read(runs, site=site)
        return None

    def _read(self, runs: dict[str, int] | None, *, site: bool) -> Change:
        """Read the rows after the position of ``runs`` (None: of every run whose stored
        head is past its position) in one snapshot; the position moves only once read."""
        conn = self._connection()
        rows: list[NewRow] = []
        after = dict(self.after)
        db.begin_read(conn)
        try:
            if runs is None:
                runs = {
                    str(run): after.get(str(run), NO_SEQ)
                    for run, seq in conn.execute(_HEADS)
                    if int(seq) > after.get(str(run), NO_SEQ)
                }
            wanted = dict(runs)
            while wanted:
                page = _rows_after(conn, wanted)
                rows.extend(page)
                for row in page:
                    wanted[row.run_id] = after[row.run_id] = row.seq
                if len(page) < PAGE_ROWS:
                    break
            head = _site_head(conn) if site else self._site
        finally:
            db.end_read(conn)
        self.after = after
        moved = head if head != self._site else None
        self._site = head
        self._catch_up = False
        self._quiet_since = time.monotonic()
        return Change(tuple(rows), moved, True, time.time_ns())

    def reset(self) -> None:
        """Drop the connections after a failed read: the next use opens fresh ones and
        reads every run past its position (nothing is lost)."""
        conn, self._conn = self._conn, None
        feed, self._feed = self._feed, None
        try:
            if conn is not None:
                conn.close()
        finally:
            if feed is not None:
                feed.close()

    def interrupt(self) -> None:
        """Make a blocked :meth:`wait` return (at shutdown); callable from any thread."""
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        self.reset()


def _rows_after(conn: Conn, after: dict[str, int]) -> list[NewRow]:
    params: list[Any] = [list(OVERVIEW_KINDS), list(after), list(after.values()), PAGE_ROWS]
    return [NewRow(*r) for r in conn.execute(_ROWS, params)]


def _site_head(conn: Conn) -> int | None:
    row = conn.execute(_SITE_HEAD).fetchone()
    return None if row is None or row[0] is None else int(row[0])
