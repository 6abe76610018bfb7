"""Change feeds: waiting until another connection commits something of interest.

One interface for both engines (design of issue 15, §4.5), so that the code waiting for
work (the people inbox, controllers, the web app) does not branch on the backend:

* :func:`notify` inside a write transaction announces a change on a channel; PostgreSQL
  delivers it to listeners when (and only if) the transaction commits, in commit order;
  on SQLite it does nothing (there, waiting is polling);
* :func:`open_feed` gives a :class:`ChangeFeed` whose :meth:`~ChangeFeed.wait` returns
  the channels notified (and keeps their payloads), or None when nothing came in time.
  SQLite: the ``data_version`` poll of the journal file (every ``poll_s``; any commit by
  another connection counts for every channel). PostgreSQL: ``LISTEN`` on a connection of
  its own; if that connection drops, the feed connects again and reports every channel
  (the caller reads everything since its last position: nothing is lost in the gap).

Channels: ``cellauto_changes``, ``cellauto_requests``, ``cellauto_queue``,
``cellauto_assets``, ``cellauto_controllers`` (see the design for who sends what).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from cellauto.records import backend as db
from cellauto.records.backend import Conn, Location

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "CHANNELS",
    "MAX_PAYLOAD",
    "ChangeFeed",
    "DataVersionFeed",
    "ListenFeed",
    "RunSpan",
    "announce_changes",
    "change_payloads",
    "notify",
    "open_feed",
    "parse_changes",
    "run_spans",
]

CHANNELS = (
    "cellauto_changes",
    "cellauto_requests",
    "cellauto_queue",
    "cellauto_assets",
    "cellauto_controllers",
)

MAX_PAYLOAD = 7_900
"""Bytes of one notification's payload at most (PostgreSQL refuses 8,000 and more)."""


class ChangeFeed(Protocol):
    """Waits until something changed on one of its channels."""

    channels: frozenset[str]

    def wait(self, timeout_s: float) -> set[str] | None:
        """The channels notified since the last call (waiting up to ``timeout_s`` for
        one), or None when nothing came in time. Their payloads: :attr:`payloads`."""
        ...

    @property
    def payloads(self) -> list[tuple[str, str]]:
        """``(channel, payload)`` of the notifications the last :meth:`wait` returned."""
        ...

    def close(self) -> None: ...


def notify(conn: Conn, channel: str, payload: str = "") -> None:
    """Announce a change on ``channel`` in the open transaction of ``conn`` (delivered at
    its commit; nothing for a rollback). SQLite: nothing (its feeds poll)."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown change channel {channel!r}; one of {', '.join(CHANNELS)}")
    if len(payload.encode()) > MAX_PAYLOAD:
        raise ValueError(f"a {channel} payload of {len(payload.encode())} bytes: split it")
    if db.is_postgresql(conn):
        from cellauto.records.backend.pg import PgConn

        assert isinstance(conn, PgConn)
        conn.execute(
            "SELECT pg_notify(?, ?)", (server_channel(conn.backend.schema, channel), payload)
        )


RunSpan = tuple[str, int, int]
"""``(run_id, first_seq, last_seq)``: the records of one run a commit added."""


def run_spans(rows: Sequence[Sequence[object]]) -> list[RunSpan]:
    """The span of each run among record rows (``run_id`` first, ``seq`` second; each
    run's rows in seq order, as a commit's are), in the order the runs first appear."""
    last = {row[0]: row[1] for row in rows}  # comprehensions: ~40 ns a row, not ~1 us
    first = {row[0]: row[1] for row in reversed(rows)}
    return [(str(run), int(first[run]), int(seq)) for run, seq in last.items()]  # type: ignore[call-overload]


def change_payloads(spans: Sequence[RunSpan], *, site: bool = False) -> list[str]:
    """The ``cellauto_changes`` payloads of a commit: ``{"runs": [[run_id, first_seq,
    last_seq], ...], "site": true}`` (``site`` only when the site chain moved), split into
    as many as keep each under :data:`MAX_PAYLOAD` bytes."""
    payloads: list[str] = []
    chunk: list[list[object]] = []
    size = 0
    for run_id, first, last in spans:
        item = [run_id, first, last]
        item_size = len(json.dumps(item).encode()) + 1
        if chunk and size + item_size > MAX_PAYLOAD - 40:
            payloads.append(json.dumps({"runs": chunk}, separators=(",", ":")))
            chunk, size = [], 0
        chunk.append(item)
        size += item_size
    last_payload: dict[str, object] = {"runs": chunk}
    if site:
        last_payload["site"] = True
    if chunk or site or not payloads:
        payloads.append(json.dumps(last_payload, separators=(",", ":")))
    return payloads


def parse_changes(payload: str) -> tuple[list[RunSpan], bool] | None:
    """The runs' spans and the site flag of a ``cellauto_changes`` payload; None for one
    this release cannot read (the reader then reads everything since its position)."""
    try:
        found = json.loads(payload)
        spans = [(str(r), int(f), int(t)) for r, f, t in found.get("runs", [])]
        return spans, bool(found.get("site", False))
    except (ValueError, TypeError, AttributeError):
        return None


def announce_changes(conn: Conn, spans: Sequence[RunSpan], *, site: bool = False) -> None:
    """In the open write transaction of ``conn``: tell the listeners of
    ``cellauto_changes`` which records (and whether the site chain) it adds, in one round
    trip. SQLite: nothing (its readers poll ``data_version``)."""
    if not (spans or site) or not db.is_postgresql(conn):
        return
    from cellauto.records.backend.pg import PgConn

    assert isinstance(conn, PgConn)
    channel = server_channel(conn.backend.schema, "cellauto_changes")
    payloads = change_payloads(spans, site=site)
    calls = ", ".join("pg_notify(?, ?)" for _ in payloads)
    conn.execute(f"SELECT {calls}", [v for p in payloads for v in (channel, p)])


def server_channel(schema: str, channel: str) -> str:
    """The channel on the server: a database holds several journals (one per schema), each
    hears only its own."""
    return f"{schema}.{channel}"


def open_feed(
    location: str | os.PathLike[str] | Location,
    channels: Iterable[str] = CHANNELS,
    *,
    poll_s: float = 0.25,
) -> ChangeFeed:
    """A feed of the journal at ``location`` for ``channels`` (see the module doc)."""
    where = Location.parse(location)
    wanted = frozenset(channels)
    unknown = wanted - set(CHANNELS)
    if unknown:
        raise ValueError(f"unknown change channels {sorted(unknown)}")
    if where.url is not None:
        return ListenFeed(where.url, wanted)
    return DataVersionFeed(where, wanted, poll_s=poll_s)


class DataVersionFeed:
    """SQLite: ``PRAGMA data_version`` on a read connection of its own, every ``poll_s``."""

    def __init__(self, location: Location, channels: frozenset[str], *, poll_s: float) -> None:
        self.channels = channels
        self._poll_s = poll_s
        self._conn = db.open_backend(location).connect_read_only(any_thread=True)
        self._seen = db.change_counter(self._conn)

    @property
    def payloads(self) -> list[tuple[str, str]]:
        return []

    def wait(self, timeout_s: float) -> set[str] | None:
        deadline = time.monotonic() + timeout_s
        while True:
            now = db.change_counter(self._conn)
            if now != self._seen:
                self._seen = now
                return set(self.channels)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            time.sleep(min(self._poll_s, left))

    def close(self) -> None:
        self._conn.close()


class ListenFeed:
    """PostgreSQL: ``LISTEN`` on a connection of its own (not pooled: it keeps listening)."""

    def __init__(self, url: str, channels: frozenset[str]) -> None:
        from cellauto.records.backend.pg import split_url

        self.channels = channels
        self._conninfo, self._schema = split_url(url)
        self._payloads: list[tuple[str, str]] = []
        self._conn: psycopg.Connection[Any] | None = None
        self.reconnects = 0
        """How often the connection dropped and was made again (each reported as every
        channel changed)."""
        self._connect()

    def _connect(self) -> None:
        import psycopg

        conn = psycopg.connect(self._conninfo, autocommit=True)
        for channel in sorted(self.channels):
            conn.execute(f'LISTEN "{server_channel(self._schema, channel)}"')
        self._conn = conn

    @property
    def payloads(self) -> list[tuple[str, str]]:
        return list(self._payloads)

    def wait(self, timeout_s: float) -> set[str] | None:
        import psycopg

        self._payloads = []
        try:
            if self._conn is None or self._conn.closed:
                raise psycopg.OperationalError("the listening connection is closed")
            found = [
                (n.channel.split(".", 1)[1], n.payload)
                for n in self._conn.notifies(timeout=max(timeout_s, 0.0), stop_after=1)
            ]
            found += self._drain()
        except psycopg.OperationalError:
            self._reconnect()
            return set(self.channels)  # anything may have changed meanwhile
        if not found:
            return None
        self._payloads = found
        return {channel for channel, _ in found}

    def _drain(self) -> list[tuple[str, str]]:
        """The notifications already received besides the first (no wait)."""
        assert self._conn is not None
        return [(n.channel.split(".", 1)[1], n.payload) for n in self._conn.notifies(timeout=0.0)]

    def _reconnect(self) -> None:
        import psycopg

        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
        self._conn = None
        self.reconnects += 1
        self._connect()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
