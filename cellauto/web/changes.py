"""What changed in the journal since last looked: the source of every live update.

A :class:`ChangeSource` is asked, over and over from one poller thread, for the next
:class:`Change`: the run records appended since the last one (bodies only of the kinds
the line overview reads), the site chain's new head, and whether the operator tasks may
have changed. :class:`SqliteChanges` does it on an SQLite journal with its own read
connection: ``PRAGMA data_version`` (a few microseconds) tells whether another
connection committed since; only then are the new rows read, by ``rowid`` (the append
order), in pages of :data:`PAGE_ROWS`. On a PostgreSQL journal
:class:`~cellauto.web.changes_pg.PgChanges` stands behind the same protocol (LISTEN/NOTIFY,
rows read by run and seq); :func:`change_source_for` picks the one of a journal's location.

A journal whose ``records`` table has no rowid (``WITHOUT ROWID``, files created before
the append-order layout) is refused with a message naming the fix (copy the journal
with a current release: ``cellauto`` reads it); the per-run fallback of the web design
§4.2 is not implemented.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cellauto.errors import JournalOpenError
from cellauto.records import backend as db
from cellauto.records.backend import Conn, Location

__all__ = [
    "OVERVIEW_KINDS",
    "PAGE_ROWS",
    "Change",
    "ChangeSource",
    "NewRow",
    "Position",
    "SqliteChanges",
    "change_source_for",
    "open_reader",
    "rows_after",
]

OVERVIEW_KINDS = ("run_started", "step_started", "state_change", "run_ended", "alarm", "deviation")
"""The run record kinds whose bodies the line overview reads (others: columns only)."""
PAGE_ROWS = 5000
"""New rows read per query: a burst larger than this is read in pages."""


@dataclass(frozen=True)
class NewRow:
    """A run record appended since the last change (``body`` only for :data:`OVERVIEW_KINDS`)."""

    rowid: int
    run_id: str
    seq: int
    kind: str
    process_time_s: float
    wall_time_ns: int
    body: str | None


@dataclass(frozen=True)
class Position:
    """Where a source stands: the last run record seen (rowid) and the site chain's head."""

    rowid: int
    site_seq: int | None


@dataclass(frozen=True)
class Change:
    """What another connection committed since the last change."""

    rows: tuple[NewRow, ...]
    site_seq: int | None
    """The site chain's new head, when it moved; else None."""
    tasks_changed: bool
    """The ``tasks`` table may have changed (any commit may change it)."""
    at_ns: int
    """``time.time_ns()`` when the change was seen."""


class ChangeSource(Protocol):
    """The journal's changes, read from one (poller) thread."""

    def start(self) -> Position:
        """The current head; later changes are those after it."""
        ...

    def wait(self, timeout_s: float) -> Change | None:
        """Block until something changed (then return it) or ``timeout_s`` passed (None)."""
        ...

    def reset(self) -> None:
        """Drop the connections after a failed read (the next use opens fresh ones)."""
        ...

    def interrupt(self) -> None:
        """Make a blocked :meth:`wait` return (at shutdown); callable from any thread."""
        ...

    def close(self) -> None: ...


def change_source_for(location: Path | Location, *, poll_s: float = 0.1) -> ChangeSource:
    """The change source of the journal at ``location``: :class:`SqliteChanges` for a
    file (``data_version`` polled every ``poll_s``), :class:`~cellauto.web.changes_pg.PgChanges`
    for a PostgreSQL URL (LISTEN/NOTIFY)."""
    where = Location.parse(location)
    if where.url is not None:
        from cellauto.web.changes_pg import PgChanges

        return PgChanges(where)
    return SqliteChanges(where.sqlite_path(), poll_s=poll_s)


def open_reader(path: Path | Location, *, any_thread: bool = False) -> Conn:
    """A plain read-only connection to the journal at ``path`` (a file, or a PostgreSQL
    location; no file checks: the server's pools checked it when they opened it)."""
    where = Location.parse(path)
    if where.url is not None:
        return db.open_backend(where).connect_read_only(any_thread=any_thread, query_only=True)
    path = where.sqlite_path()
    if not path.is_file():
        raise JournalOpenError(f"no journal at {path}; give --db PATH")
    return db.open_backend(path).connect_read_only(any_thread=any_thread, query_only=True)


_MARKS = ", ".join(f"'{k}'" for k in OVERVIEW_KINDS)
_AFTER = (
    "SELECT rowid, run_id, seq, kind, process_time_s, wall_time_ns,"
    f" CASE WHEN kind IN ({_MARKS}) THEN body END"
    " FROM records WHERE rowid > ? ORDER BY rowid LIMIT ?"
)


def rows_after(conn: Conn, rowid: int, limit: int) -> list[NewRow]:
    """At most ``limit`` run records stored after ``rowid``, in append order (bodies
    of :data:`OVERVIEW_KINDS` only)."""
    return [NewRow(*r) for r in conn.execute(_AFTER, (rowid, limit))]


def _site_head(conn: Conn) -> int | None:
    try:
        row = conn.execute("SELECT max(seq) FROM site_records").fetchone()
    except sqlite3.OperationalError:  # a file older than the site chain
        return None
    return None if row is None or row[0] is None else int(row[0])


class SqliteChanges:
    """:class:`ChangeSource` over an SQLite journal: ``data_version`` polled every
    ``poll_s`` on a connection of its own, new rows read by rowid."""

    def __init__(self, path: Path, *, poll_s: float = 0.1) -> None:
        self.path = path
        self.poll_s = poll_s
        self._conn: Conn | None = None
        self._rowid = 0
        self._site: int | None = None
        self._version: int | None = None
        self._stop = threading.Event()

    def _connection(self) -> Conn:
        if self._conn is None:
            conn = open_reader(self.path, any_thread=True)
            sql = db.table_sql(conn, ("records",))
            if sql and "WITHOUT ROWID" in str(sql[0]).upper():
                conn.close()
                raise JournalOpenError(
                    f"journal {self.path} stores its records WITHOUT ROWID (an earlier "
                    "release's layout): the web app cannot follow it live; copy its runs "
                    "into a journal created by this release"
                )
            self._conn = conn
        return self._conn

    def _data_version(self) -> int:
        return db.change_counter(self._connection())

    def start(self) -> Position:
        conn = self._connection()
        db.begin_read(conn)
        try:
            row = conn.execute("SELECT max(rowid) FROM records").fetchone()
            self._rowid = int(row[0]) if row and row[0] is not None else 0
            self._site = _site_head(conn)
        finally:
            conn.execute("COMMIT")
        self._version = self._data_version()
        return Position(self._rowid, self._site)

    def read_since(self) -> Change:
        """Everything committed after the last position, now (one snapshot)."""
        conn = self._connection()
        rows: list[NewRow] = []
        db.begin_read(conn)
        try:
            while True:
                page = rows_after(conn, self._rowid, PAGE_ROWS)
                rows.extend(page)
                if page:
                    self._rowid = page[-1].rowid
                if len(page) < PAGE_ROWS:
                    break
            site = _site_head(conn)
        finally:
            conn.execute("COMMIT")
        moved = site if site != self._site else None
        self._site = site
        return Change(tuple(rows), moved, True, time.time_ns())

    def wait(self, timeout_s: float) -> Change | None:
        deadline = time.monotonic() + timeout_s
        while not self._stop.is_set():
            version = self._data_version()
            if version != self._version:
                change = self.read_since()  # a failed read leaves the version unseen
                self._version = version
                return change
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self._stop.wait(min(self.poll_s, left))
        return None

    def reset(self) -> None:
        """Drop the connection after a failed read: the next use opens a fresh one (the
        file may have been replaced, as a restore does); rows are still read by rowid
        from where the last good read left off."""
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None
                self._version = None

    def interrupt(self) -> None:
        """Make a blocked :meth:`wait` return (at shutdown); callable from any thread."""
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
