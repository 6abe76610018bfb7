"""The PostgreSQL backend: a journal in one schema of a PostgreSQL database (issue 15).

:class:`PgConn` is the :class:`~cellauto.records.backend.Conn` of a psycopg 3 connection:
the SQL of cellauto runs on it as written (``?`` placeholders become ``%s`` once per
statement text), in autocommit mode with explicit ``BEGIN`` (as ``isolation_level=None``
does on SQLite), and a :class:`psycopg.Error` is raised as the :mod:`sqlite3` class the
code already catches (the original as ``__cause__``, its SQLSTATE as ``sqlstate``).
:class:`PgBackend` hands out connections from one pool per journal and process, creates
the schema on first use (``pg_schema``) and refuses a schema newer than this cellauto.

What the engine does its own way (design of issue 15, §2.3-2.5): the named write locks are
transaction-scoped advisory locks taken in their order; durability is
``synchronous_commit`` (on: durable when the commit returns; off: the analogue of SQLite's
``synchronous=NORMAL``); read snapshots are ``REPEATABLE READ``; records go in by binary
``COPY``; the clock of liveness is the server's.

This module imports psycopg; :mod:`cellauto.records.backend` imports it only for a
``postgresql://`` location (the ``[postgres]`` extra).
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from functools import lru_cache
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

import psycopg
import psycopg.errors as pg_errors
from psycopg import pq
from psycopg.adapt import Dumper, Loader
from psycopg_pool import ConnectionPool, PoolTimeout

from cellauto.errors import JournalError, JournalNotFoundError, JournalOpenError
from cellauto.records.backend.locks import LOCK_SPACE, Lock, check_order

__all__ = [
    "DEFAULT_SCHEMA",
    "MIN_SERVER_VERSION",
    "PgBackend",
    "PgConn",
    "map_error",
    "split_url",
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

RECORD_COLUMNS = "run_id, seq, kind, process_time_s, wall_time_ns, body, prev_hash, hash"
COPY_RECORDS = f"COPY records ({RECORD_COLUMNS}) FROM STDIN (FORMAT BINARY)"
_T = TypeVar("_T")

RECORD_TYPES = ("text", "int8", "text", "float8", "int8", "text", "text", "text")


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


# -- errors -----------------------------------------------------------------------------------

_MAPPED: tuple[tuple[type[psycopg.Error], type[sqlite3.Error]], ...] = (
    (psycopg.IntegrityError, sqlite3.IntegrityError),
    (psycopg.OperationalError, sqlite3.OperationalError),
    (psycopg.ProgrammingError, sqlite3.OperationalError),  # SQLite: "no such table", syntax
    (psycopg.DataError, sqlite3.DataError),
    (psycopg.NotSupportedError, sqlite3.NotSupportedError),
    (psycopg.InternalError, sqlite3.InternalError),
    (psycopg.InterfaceError, sqlite3.InterfaceError),
    (psycopg.DatabaseError, sqlite3.DatabaseError),
)

_LOCKED = (pg_errors.LockNotAvailable, pg_errors.QueryCanceled, PoolTimeout)


def map_error(exc: BaseException) -> sqlite3.Error:
    """The :mod:`sqlite3` error raised for a psycopg one: same message, ``sqlstate`` kept.
    A lock wait past the connection's timeout says "database is locked", as SQLite does."""
    message = str(exc).strip() or type(exc).__name__
    if isinstance(exc, _LOCKED):
        error: sqlite3.Error = sqlite3.OperationalError(f"database is locked ({message})")
    elif isinstance(exc, pg_errors.ReadOnlySqlTransaction):  # SQLite: query_only, mode=ro
        error = sqlite3.OperationalError(f"attempt to write a readonly database ({message})")
    else:
        kind = next((to for frm, to in _MAPPED if isinstance(exc, frm)), sqlite3.Error)
        error = kind(message)
    error.sqlstate = getattr(exc, "sqlstate", None)  # type: ignore[attr-defined]
    return error


# -- SQL text ---------------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def translate(sql: str) -> str:
    """``?`` → ``%s`` outside quotes; ``%`` → ``%%`` (psycopg's placeholder syntax)."""
    out: list[str] = []
    quote = ""
    for char in sql:
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "?":
            out.append("%s")
            continue
        if char == "%":
            out.append("%%")
            continue
        out.append(char)
    return "".join(out)


# -- adapters ---------------------------------------------------------------------------------


class _BoolAsInt(Dumper):
    """SQLite stores a Python bool as the integer 0 or 1; so does the journal here."""

    oid = psycopg.adapters.types["int8"].oid

    def dump(self, obj: Any) -> bytes:
        return b"1" if obj else b"0"


class _NumericLoader(Loader):
    """``sum()``/``avg()`` give ``numeric``: an int when integral (as SQLite), else float."""

    def load(self, data: Any) -> Any:
        value = Decimal(bytes(data).decode())
        return int(value) if value == value.to_integral_value() else float(value)


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.adapters.register_dumper(bool, _BoolAsInt)
    conn.adapters.register_loader("numeric", _NumericLoader)


# -- the connection ---------------------------------------------------------------------------


class PgConn:
    """A :class:`~cellauto.records.backend.Conn` on a PostgreSQL connection (see module doc).

    One thread at a time (as an SQLite connection); :meth:`close` gives the connection
    back to its pool. A connection the server or the network dropped is replaced from the
    pool at the next statement outside a transaction (its session settings applied again);
    inside a transaction, every statement but ``ROLLBACK`` is refused: the server rolled
    it back, and nothing may run as if it were still open."""

    is_postgresql = True

    def __init__(self, backend: PgBackend, raw: psycopg.Connection[Any]) -> None:
        self.backend = backend
        self.raw = raw
        self.held: tuple[Lock, ...] = ()  # the named locks of the open write transaction
        self._closed = False
        self._settings: dict[str, str] = {}  # SET statements of the session, by name
        self._tx_open = False  # as of the last statement (a dropped connection cannot say)
        self.reconnects = 0
        """How often a dropped connection was replaced."""

    # the Conn protocol
    def execute(self, sql: str, parameters: Any = (), /) -> psycopg.Cursor[Any]:
        if parameters:
            text = translate(sql)
            return self._attempt(sql, lambda raw: raw.execute(text, parameters))
        text = sql.replace("%", "%%") if "%" in sql else sql
        return self._attempt(sql, lambda raw: raw.execute(text))

    def _attempt(self, sql: str, call: Callable[[psycopg.Connection[Any]], _T]) -> _T:
        """``call`` on the connection; if the connection turns out dropped and the
        statement is one that writes nothing outside a transaction (a read, a ``BEGIN``,
        a setting), once more on a new one."""
        raw = self._ready(sql)
        try:
            return call(raw)
        except psycopg.Error as exc:
            if not (_dropped(raw, exc) and not self._tx_open and _harmless(sql)):
                raise map_error(exc) from exc
        finally:
            self._note(self.raw)
        try:
            return call(self._replace())
        except psycopg.Error as exc:
            raise map_error(exc) from exc
        finally:
            self._note(self.raw)

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> psycopg.Cursor[Any]:
        raw = self._ready(sql)
        cursor = raw.cursor()
        rows = list(parameters)
        if not rows:
            return cursor
        try:
            cursor.executemany(translate(sql), rows)
        except psycopg.Error as exc:
            raise map_error(exc) from exc
        finally:
            self._note(raw)
        return cursor

    @property
    def in_transaction(self) -> bool:
        if self.raw.closed or self.raw.broken:
            return self._tx_open
        return self.raw.info.transaction_status != pq.TransactionStatus.IDLE

    def _note(self, raw: psycopg.Connection[Any]) -> None:
        if not (raw.closed or raw.broken):
            self._tx_open = raw.info.transaction_status != pq.TransactionStatus.IDLE

    def _ready(self, sql: str) -> psycopg.Connection[Any]:
        """The connection to run ``sql`` on: this one, or a new one if it was dropped."""
        raw = self.raw
        if not (raw.closed or raw.broken) or self._closed:
            return raw
        if self._tx_open:
            words = sql.split()
            if words[:1] == ["ROLLBACK"] and words[1:2] != ["TO"]:
                self._tx_open = False
                return self._replace()  # nothing to roll back: the server did
            raise sqlite3.OperationalError(
                f"the connection to journal {self.backend.where} was lost inside a "
                "transaction: the server rolled it back; nothing of it was written"
            )
        return self._replace()

    def _replace(self) -> psycopg.Connection[Any]:
        with contextlib.suppress(psycopg.Error):
            self.raw.close()  # dropped (perhaps not known to psycopg yet): never lent again
        self.backend.give_back(self.raw)  # the pool discards a closed connection
        self.raw = self.backend.take_raw(5.0)
        self.reconnects += 1
        self._tx_open = False
        self.held = ()
        if self._settings:
            try:
                self.raw.execute("; ".join(self._settings.values()))
            except psycopg.Error as exc:
                raise map_error(exc) from exc
        return self.raw

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.in_transaction and not self.raw.closed:  # as sqlite3's close: rolled back
            with contextlib.suppress(psycopg.Error):
                self.raw.rollback()
        self.backend.give_back(self.raw)

    @property
    def closed(self) -> bool:
        return self._closed

    # what the backend does on it (called through cellauto.records.backend)
    def run(self, sql: str) -> None:
        """Statements without parameters, several at once (one round trip)."""
        self._attempt(sql, lambda raw: raw.execute(sql))
        if sql.startswith("SET ") and ";" not in sql:  # a session setting: kept
            self._settings[sql.split()[1]] = sql

    def begin_write(self, locks: Sequence[Lock], shared: Iterable[Lock]) -> None:
        check_order((), tuple(locks))
        self.run("BEGIN" + _lock_sql(locks, frozenset(shared)))
        self.held = tuple(locks)

    def acquire(self, locks: Sequence[Lock]) -> None:
        locks = [lock for lock in locks if lock not in self.held]  # held till the end
        check_order(self.held, tuple(locks))
        if locks:
            self.run(_lock_sql(locks, frozenset()).lstrip("; "))
            self.held = (*self.held, *locks)

    def begin_read(self, query_only: bool) -> None:
        self.run("BEGIN ISOLATION LEVEL REPEATABLE READ" + (" READ ONLY" if query_only else ""))

    def end_read(self) -> None:
        if self.in_transaction:
            self.run("COMMIT")

    def set_durable(self, durable: bool) -> None:
        self.run(f"SET synchronous_commit = {'on' if durable else 'off'}")

    def insert_records(self, rows: Iterable[Sequence[object]]) -> None:
        raw = self._ready("COPY")
        try:
            with raw.cursor() as cursor, cursor.copy(COPY_RECORDS) as copy:
                copy.set_types(list(RECORD_TYPES))
                for row in rows:
                    copy.write_row(row)
        except psycopg.Error as exc:
            raise map_error(exc) from exc

    def tables(self) -> set[str]:
        query = (
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            " UNION ALL SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
        )
        return {name for (name,) in self.execute(query)}

    def change_counter(self) -> int:
        """The server's WAL insert position: it moves with every commit (of any schema:
        a poller reads again a little more often than it must, never less)."""
        return int(_one(self, "SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn"))

    def server_now_ns(self) -> int:
        return time.time_ns() + self.backend.clock_offset_ns(self)


def _dropped(raw: psycopg.Connection[Any], exc: psycopg.Error) -> bool:
    """Whether ``exc`` says the connection itself is gone (the server ended the session,
    or the network did), rather than the statement failing."""
    state = getattr(exc, "sqlstate", None) or ""
    return (
        raw.broken
        or raw.closed
        or state.startswith(("57P", "08"))  # admin shutdown, crash, connection exception
        or (isinstance(exc, psycopg.OperationalError) and not state)  # libpq: socket gone
    )


def _harmless(sql: str) -> bool:
    """Whether ``sql`` may run again after its connection dropped (outside a transaction):
    it began one, read, or set a session setting — it cannot have committed a write."""
    first = re.match(r"\s*([A-Za-z]+)", sql)
    return first is not None and first.group(1).upper() in ("BEGIN", "SELECT", "SET", "SHOW")


def _one(conn: PgConn, sql: str) -> Any:
    """The one value of a query that returns one row."""
    row = conn.execute(sql).fetchone()
    if row is None:  # unreachable: the queries given return one row
        raise sqlite3.OperationalError(f"no row from {sql}")
    return row[0]


def _lock_sql(locks: Sequence[Lock], shared: frozenset[Lock]) -> str:
    calls = ", ".join(
        f"pg_advisory_xact_lock{'_shared' if lock in shared else ''}({LOCK_SPACE}, {int(lock)})"
        for lock in locks
    )
    return f"; SELECT {calls}" if calls else ""


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
            configure=_configure,
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
            server_us = _one(conn, "SELECT (extract(epoch FROM clock_timestamp()) * 1e6)::bigint")
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
