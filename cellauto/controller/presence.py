"""A controller's presence: an advisory lock its control session holds while it lives.

:class:`Presence` opens the controller's *control connection* (not pooled), sets the
session's TCP keepalives and ``client_connection_check_interval`` so that the server
ends the session of a vanished machine within about 11 s, takes
``pg_advisory_lock(PRESENCE_SPACE, key)`` with a key of its own, and registers the
controller in ``controllers`` (status ``live``). A second live process under a name in
use is refused: its presence lock is held.

:class:`PeerWatch` watches one peer with a connection of its own blocked in
``pg_advisory_lock_shared(PRESENCE_SPACE, peer key)``: it returns when the peer's
session ends (a SIGKILL is seen within milliseconds), and the watch calls back. No
polling.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import psycopg

from cellauto.errors import CellautoError
from cellauto.records._owners import process_start
from cellauto.records.backend.notify import server_channel
from cellauto.records.backend.pg import split_url

__all__ = [
    "CONTROLLERS_CHANNEL",
    "PRESENCE_SPACE",
    "ControllerRow",
    "PeerWatch",
    "Presence",
    "live_controllers",
]

log = logging.getLogger(__name__)

PRESENCE_SPACE = 0x70726573
"""The first key of every presence lock ("pres"); the second is the controller's key."""

CONTROLLERS_CHANNEL = "cellauto_controllers"

SESSION_SETTINGS = (
    "SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2;"
    " SET tcp_keepalives_count = 3; SET client_connection_check_interval = '2s'"
)
"""The control session's settings: the server ends a vanished machine's session in
at most 5 + 3 x 2 s (each is per session, PostgreSQL 14+)."""

_ROW = (
    "name, host, pid, process_start, presence_key, line, assets, capacity,"
    " started_wall_ns, heartbeat_wall_ns, stopped_wall_ns, status"
)


class ControllerRow(NamedTuple):
    """One ``controllers`` row."""

    name: str
    host: str
    pid: int
    process_start: str | None
    presence_key: int
    line: str
    assets: list[str]
    capacity: int
    started_wall_ns: int
    heartbeat_wall_ns: int
    stopped_wall_ns: int | None
    status: str

    @classmethod
    def from_row(cls, row: Any) -> ControllerRow:
        values = list(row)
        values[6] = json.loads(values[6])
        return cls(*values)


def connect(url: str, role: str = "") -> psycopg.Connection[Any]:
    """A connection of its own to the journal's schema (autocommit); ``role`` names it
    among the controller's connections (``application_name``)."""
    conninfo, schema = split_url(url)
    return psycopg.connect(
        conninfo,
        autocommit=True,
        application_name=f"cellauto-controller:{schema}" + (f":{role}" if role else ""),
        options=f"-c search_path={schema}",
    )


def live_controllers(conn: psycopg.Connection[Any]) -> list[ControllerRow]:
    rows = conn.execute(f"SELECT {_ROW} FROM controllers WHERE status = 'live' ORDER BY name")
    return [ControllerRow.from_row(row) for row in rows.fetchall()]


def _notify(conn: psycopg.Connection[Any], schema: str, name: str, status: str) -> None:
    conn.execute(
        "SELECT pg_notify(%s, %s)",
        (server_channel(schema, CONTROLLERS_CHANNEL), json.dumps({"name": name, "status": status})),
    )


class Presence:
    """This controller's control connection, presence lock and ``controllers`` row."""

    def __init__(self, url: str, *, name: str, line: str, assets: set[str], capacity: int) -> None:
        self.url = url
        self.name = name
        self._schema = split_url(url)[1]
        self.conn = self._control_connection()
        self.lock = threading.Lock()  # one thread at a time on the control connection
        self.retaken = 0
        """How often the control connection dropped and the presence was taken again."""
        try:
            self.key = self._take_key()
            self._register(line, assets, capacity)
        except BaseException:
            self.conn.close()
            raise

    def _control_connection(self) -> psycopg.Connection[Any]:
        conn = connect(self.url, "presence")
        try:
            conn.execute(SESSION_SETTINGS)
        except BaseException:
            conn.close()
            raise
        return conn

    def retake(self) -> bool:
        """The control connection dropped: a new one takes a fresh presence key, if this
        controller is still ``live`` under its old key (the drop lasted less than its
        peers' grace). False if they marked it lost meanwhile (its runs are theirs).
        A database error if the server cannot be reached (tried again later)."""
        with self.lock:
            conn = self._control_connection()
            try:
                old, self.conn = self.conn, conn
                with contextlib.suppress(psycopg.Error):
                    old.close()
                key = self._take_key()
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (PRESENCE_SPACE,))
                    changed = conn.execute(
                        "UPDATE controllers SET presence_key = %s, heartbeat_wall_ns ="
                        " (extract(epoch FROM clock_timestamp()) * 1e9)::bigint"
                        " WHERE name = %s AND presence_key = %s AND status = 'live'",
                        (key, self.name, self.key),
                    ).rowcount
                    if changed:
                        _notify(conn, self._schema, self.name, "live")
            except BaseException:
                with contextlib.suppress(psycopg.Error):
                    conn.close()
                raise
            if not changed:
                return False
            self.key = key
            self.retaken += 1
            return True

    def _take_key(self) -> int:
        for _ in range(20):
            key = secrets.randbits(31)
            got = self.conn.execute(
                "SELECT pg_try_advisory_lock(%s, %s)", (PRESENCE_SPACE, key)
            ).fetchone()
            if got and got[0]:
                return key
        raise CellautoError("no free presence key after 20 tries (a bug)")

    def _register(self, line: str, assets: set[str], capacity: int) -> None:
        conn = self.conn
        now = time.time_ns()
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (PRESENCE_SPACE,))
            row = conn.execute(
                f"SELECT {_ROW} FROM controllers WHERE name = %s", (self.name,)
            ).fetchone()
            if row is not None:
                old = ControllerRow.from_row(row)
                free = conn.execute(
                    "SELECT pg_try_advisory_lock_shared(%s, %s)", (PRESENCE_SPACE, old.presence_key)
                ).fetchone()
                if not (free and free[0]):
                    raise CellautoError(
                        f"controller {self.name!r} is already running (pid {old.pid} on host "
                        f"{old.host}, line {old.line}): its presence lock is held. Give this "
                        "one another --name, or stop that one first"
                    )
                conn.execute(
                    "SELECT pg_advisory_unlock_shared(%s, %s)", (PRESENCE_SPACE, old.presence_key)
                )
            conn.execute(
                f"INSERT INTO controllers ({_ROW}) VALUES"
                " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, NULL, 'live')"
                " ON CONFLICT (name) DO UPDATE SET host = excluded.host, pid = excluded.pid,"
                " process_start = excluded.process_start, presence_key = excluded.presence_key,"
                " line = excluded.line, assets = excluded.assets, capacity = excluded.capacity,"
                " started_wall_ns = excluded.started_wall_ns,"
                " heartbeat_wall_ns = excluded.heartbeat_wall_ns, stopped_wall_ns = NULL,"
                " status = 'live'",
                (
                    self.name,
                    socket.gethostname(),
                    os.getpid(),
                    process_start(os.getpid()),
                    self.key,
                    line,
                    json.dumps(sorted(assets)),
                    capacity,
                    now,
                    now,
                ),
            )
            _notify(conn, self._schema, self.name, "live")

    def peers(self) -> list[ControllerRow]:
        """The other live controllers."""
        with self.lock:
            return [row for row in live_controllers(self.conn) if row.name != self.name]

    def heartbeat(self) -> bool:
        """Refresh this controller's heartbeat; False if its peers have marked it lost
        meanwhile (it hung past their stale interval: its runs were taken over)."""
        with self.lock:
            changed = self.conn.execute(  # the server's clock: peers compare it with theirs
                "UPDATE controllers SET heartbeat_wall_ns ="
                " (extract(epoch FROM clock_timestamp()) * 1e9)::bigint"
                " WHERE name = %s AND presence_key = %s AND status = 'live'",
                (self.name, self.key),
            ).rowcount
        return bool(changed)

    def mark(self, peer: ControllerRow, status: str) -> bool:
        """Mark a peer lost (or stopped) if it is still that peer's live row; whether this
        call changed it."""
        with self.lock, self.conn.transaction():
            changed = self.conn.execute(
                "UPDATE controllers SET status = %s, stopped_wall_ns = %s"
                " WHERE name = %s AND presence_key = %s AND status = 'live'",
                (status, time.time_ns(), peer.name, peer.presence_key),
            ).rowcount
            if changed:
                _notify(self.conn, self._schema, peer.name, status)
        return bool(changed)

    def stop(self) -> None:
        """A clean exit: status ``stopped``, the presence lock let go with the session."""
        with contextlib.suppress(psycopg.Error), self.lock, self.conn.transaction():
            self.conn.execute(
                "UPDATE controllers SET status = 'stopped', stopped_wall_ns = %s"
                " WHERE name = %s AND presence_key = %s",
                (time.time_ns(), self.name, self.key),
            )
            _notify(self.conn, self._schema, self.name, "stopped")
        self.conn.close()


class PeerWatch:
    """A thread blocked on a peer's presence lock; ``on_gone(peer)`` when it is free."""

    def __init__(self, url: str, peer: ControllerRow, on_gone: Callable[[ControllerRow], None]):
        self.peer = peer
        self._on_gone = on_gone
        self._conn = connect(url, "watch")
        self._stopped = False
        self._thread = threading.Thread(
            target=self._watch, name=f"presence of {peer.name}", daemon=True
        )
        self._thread.start()

    def _watch(self) -> None:
        try:
            self._conn.execute(
                "SELECT pg_advisory_lock_shared(%s, %s)", (PRESENCE_SPACE, self.peer.presence_key)
            )
            self._conn.execute(
                "SELECT pg_advisory_unlock_shared(%s, %s)",
                (PRESENCE_SPACE, self.peer.presence_key),
            )
        except psycopg.Error as exc:
            if self._stopped:
                return
            log.warning("watching controller %s: %s; a sweep checks it", self.peer.name, exc)
            return
        finally:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
        if not self._stopped:
            log.info("controller %s: presence lock free", self.peer.name)
            self._on_gone(self.peer)

    def stop(self) -> None:
        self._stopped = True
        with contextlib.suppress(psycopg.Error):
            self._conn.cancel_safe()
