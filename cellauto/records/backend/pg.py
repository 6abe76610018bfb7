"""The PostgreSQL backend: a journal in one schema of a PostgreSQL database (issue 15).

:class:`PgBackend` hands out connections from one pool per journal and process, creates
the schema on first use (``pg_schema``) and refuses a schema newer than this cellauto; a
journal's URL names its schema (:func:`split_url`). The backend is split by job:

* this module: the URL, the pools, :class:`PgBackend` (connect, sync, the server's clock);
* :mod:`.pg_conn`: :class:`PgConn`, the :class:`~cellauto.records.backend.Conn` of a
  psycopg 3 connection (``?`` → ``%s``, adapters, reconnect, locks, durability);
* :mod:`.pg_errors`: psycopg errors raised as the :mod:`sqlite3` classes the code catches;
* :mod:`.pg_copy`: the records insert by binary ``COPY``.

What the engine does its own way (design of issue 15, §2.3-2.5): the named write locks are
transaction-scoped advisory locks taken in their order; durability is
``synchronous_commit`` (on: durable when the commit returns; off: the analogue of SQLite's
``synchronous=NORMAL``); read snapshots are ``REPEATABLE READ``; records go in by binary
``COPY``; the clock of liveness is the server's.

This module imports psycopg; :mod:`cellauto.records.backend` imports it only for a
``postgresql://`` location (the ``[postgres]`` extra).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import OrderedDict
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from cellauto.errors import JournalError, JournalNotFoundError, JournalOpenError
from cellauto.records.backend.pg_conn import PgConn, configure, one_value, translate
from cellauto.records.backend.pg_copy import COPY_RECORDS, RECORD_COLUMNS, RECORD_TYPES
from cellauto.records.backend.pg_errors import map_error

__all__ = [
    "COPY_RECORDS",
    "DEFAULT_SCHEMA",
    "MIN_SERVER_VERSION",
    "RECORD_COLUMNS",
    "RECORD_TYPES",
    "PgBackend",
    "PgConn",
    "close_pools",
    "forget_created",
    "map_error",
    "split_url",
    "translate",
]

DEFAULT_SCHEMA = "cellauto"
"""The database schema of a journal whose URL names none."""

MIN_SERVER_VERSION = 140000
"""PostgreSQL 14 or newer (``pg_current_xact_id``, ``client_connection_check_interval``)."""

MIGRATE_LOCK = 0
"""The advisory lock number (in :data:`LOCK_SPACE`) held while a schema is created."""

POOL_MAX = 16
"""Connections at most per journal and process (a Journal holds two, a SiteStore one)."""

POOL_IDLE_S = 60.0
"""An idle pooled connection is closed after this long (a pool keeps none open)."""

POOLS_KEPT = 16
"""Pools (journals) a process keeps; beyond, the least recently used idle one is closed."""

CLOCK_REFRESH_S = 60.0
"""How often the offset of the server's clock is measured again."""


# -- the URL ----------------------------------------------------------------------------------


def split_url(url: str) -> tuple[str, str]:
    """``(conninfo, schema)`` of a journal URL: the schema is the fragment (``#name``), else
    the ``search_path`` of ``?options=-csearch_path=name``, else :data:`DEFAULT_SCHEMA`.
    The conninfo is the URL without the fragment and with the scheme ``postgresql``."""
    parts = urlsplit(url)
    schema = unquote(parts.fragment) if parts.fragment else ""
    if not schema:
        for key, value in parse_qsl(parts.query):
            if key == "options":
                for option in value.replace("-c ", "-c").split():
                    if option.startswith("-csearch_path="):
                        schema = option.split("=", 1)[1].split(",")[0].strip()
    schema = schema or DEFAULT_SCHEMA
    if not schema.replace("_", "").isalnum() or schema[0].isdigit():
        raise JournalOpenError(
            f"journal schema {schema!r}: a schema name is letters, digits and _ (not first a digit)"
        )
    conninfo = urlunsplit(parts._replace(scheme="postgresql", fragment=""))
    return conninfo, schema.lower()


# -- the backend ------------------------------------------------------------------------------

_POOLS: OrderedDict[tuple[str, str], ConnectionPool[Any]] = OrderedDict()
_POOLS_LOCK = threading.Lock()
_CREATED: set[tuple[str, str]] = set()  # schemas checked by this process


def _reset(conn: psycopg.Connection[Any]) -> None:
    conn.execute("RESET ALL; UNLISTEN *")


def pool_for(conninfo: str, schema: str) -> ConnectionPool[Any]:
    """The process's pool of connections to ``schema`` (made at first use)."""
    key = (conninfo, schema)
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is not None and not pool.closed:
            _POOLS.move_to_end(key)
            return pool
        _probe(conninfo)
        pool = ConnectionPool(
            conninfo,
            kwargs={
                "autocommit": True,
                "application_name": f"cellauto:{schema}",
                "options": f"-c search_path={schema} -c synchronous_commit=off",
            },
            configure=configure,
            reset=_reset,
            check=ConnectionPool.check_connection,  # an idle one the server dropped: not lent
            min_size=0,
            max_size=POOL_MAX,
            max_idle=POOL_IDLE_S,
            num_workers=1,
            open=True,
            name=f"cellauto {schema}",
        )
        _POOLS[key] = pool
        _close_unused()
        return pool


def _close_unused() -> None:
    """Close the least recently used pools beyond :data:`POOLS_KEPT` that lend nothing."""
    for key in list(_POOLS)[: max(len(_POOLS) - POOLS_KEPT, 0)]:
        stats = _POOLS[key].get_stats()
        if stats.get("pool_size", 0) == stats.get("pool_available", 0):
            _POOLS.pop(key).close()


def _probe(conninfo: str) -> None:
    """Connect once, so that a server that cannot be reached is refused at once with why
    (a pool would retry in the background until its timeout)."""
    try:
        psycopg.connect(conninfo, connect_timeout=10).close()
    except psycopg.Error as exc:
        from cellauto.records.backend import describe_url

        raise JournalOpenError(
            f"cannot connect to journal {describe_url(conninfo)}: {str(exc).strip()}"
        ) from exc


def close_pools() -> None:
    """Close every pool of this process (tests, and before a fork)."""
    with _POOLS_LOCK:
        pools = list(_POOLS.values())
        _POOLS.clear()
    for pool in pools:
        pool.close()


class PgBackend:
    """Opens connections to the journal in one schema of a PostgreSQL database."""

    name = "postgresql"
    path = None

    def __init__(self, url: str) -> None:
        from cellauto.records.backend import describe_url

        self.url = url
        self.where = describe_url(url)
        self.conninfo, self.schema = split_url(url)
        self._offset_ns: int | None = None
        self._offset_at = 0.0

    # -- connections
    def take_raw(self, timeout_s: float) -> psycopg.Connection[Any]:
        """A connection from the pool (the caller gives it back)."""
        pool = pool_for(self.conninfo, self.schema)
        try:
            raw: psycopg.Connection[Any] = pool.getconn(timeout=max(timeout_s, 5.0))
            return raw
        except PoolTimeout as exc:
            raise JournalError(
                f"cannot connect to journal {self.where}: {exc} (is the server running?)"
            ) from exc

    def _get(self, timeout_s: float) -> PgConn:
        conn = PgConn(self, self.take_raw(timeout_s))
        try:
            conn.run(f"SET lock_timeout = {max(int(timeout_s * 1000), 1)}")
        except BaseException:
            conn.close()
            raise
        return conn

    def pool(self) -> ConnectionPool[Any]:
        """This process's pool of connections to the journal."""
        return pool_for(self.conninfo, self.schema)

    def give_back(self, raw: psycopg.Connection[Any]) -> None:
        pool = _POOLS.get((self.conninfo, self.schema))
        if pool is None or pool.closed:
            raw.close()
        else:
            pool.putconn(raw)

    def connect(self, *, create: bool, timeout_s: float, any_thread: bool = False) -> PgConn:
        """A connection to the journal, its schema checked (and with ``create``, created)."""
        conn = self._get(timeout_s)
        try:
            self._prepare(conn, create=create)
        except BaseException:
            conn.close()
            raise
        return conn

    def connect_writer(self, *, timeout_s: float) -> PgConn:
        """The writer thread's connection to an opened journal (no checks)."""
        return self._get(timeout_s)

    def connect_read_only(
        self, *, any_thread: bool = True, query_only: bool = False, timeout_s: float = 5.0
    ) -> PgConn:
        """A connection whose transactions cannot write (``default_transaction_read_only``)."""
        conn = self._get(timeout_s)
        conn.run("SET default_transaction_read_only = on")
        return conn

    def sync(self) -> bool:
        """Make every earlier commit durable: commit a transaction that has an xid with
        ``synchronous_commit=on`` (the WAL is flushed up to it, and so past every earlier
        commit)."""
        conn = self._get(5.0)
        try:
            conn.run(
                "SET synchronous_commit = on; BEGIN; SELECT pg_current_xact_id(); COMMIT;"
                " SET synchronous_commit = off"
            )
        except sqlite3.Error as exc:
            raise OSError(f"cannot sync journal {self.where}: {exc}") from exc
        finally:
            conn.close()
        return True

    def clock_offset_ns(self, conn: PgConn) -> int:
        """The server's clock minus this machine's, measured at first use and every minute
        (half the round trip corrected)."""
        if self._offset_ns is None or time.monotonic() - self._offset_at > CLOCK_REFRESH_S:
            before = time.time_ns()
            server_us = one_value(
                conn, "SELECT (extract(epoch FROM clock_timestamp()) * 1e6)::bigint"
            )
            after = time.time_ns()
            self._offset_ns = int(server_us) * 1000 - (before + after) // 2
            self._offset_at = time.monotonic()
        return self._offset_ns

    # -- the schema
    def _prepare(self, conn: PgConn, *, create: bool) -> None:
        from cellauto.records.backend import pg_schema

        version = int(conn.raw.info.server_version)
        if version < MIN_SERVER_VERSION:
            raise JournalOpenError(
                f"journal {self.where}: the PostgreSQL server is version {version // 10000};"
                " cellauto needs 14 or newer"
            )
        key = (self.conninfo, self.schema)
        if key not in _CREATED and not pg_schema.exists(conn):
            if not create:
                raise JournalNotFoundError(
                    f"no journal at {self.where} (schema {self.schema} has no journal); check "
                    "the URL, or create it with `cellauto db init --db URL`"
                )
            pg_schema.create(conn, self.schema)
        pg_schema.check_version(conn, self.where)
        _CREATED.add(key)


def forget_created(conninfo: str, schema: str) -> None:
    """Check the schema again on the next open (a test dropped or emptied it)."""
    _CREATED.discard((conninfo, schema))
