"""The PostgreSQL connection of a journal: :class:`PgConn` (issue 15, §2.2).

:class:`PgConn` is the :class:`~cellauto.records.backend.Conn` of a psycopg 3 connection:
the SQL of cellauto runs on it as written (``?`` placeholders become ``%s`` once per
statement text, :func:`translate`), in autocommit mode with explicit ``BEGIN`` (as
``isolation_level=None`` does on SQLite), and a :class:`psycopg.Error` is raised as the
:mod:`sqlite3` class the code already catches (:mod:`.pg_errors`). A connection the server
dropped is replaced outside a transaction; the named write locks are transaction-scoped
advisory locks taken in their order.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
from psycopg import pq
from psycopg.adapt import Dumper, Loader

from cellauto.records.backend.locks import LOCK_SPACE, Lock, check_order
from cellauto.records.backend.pg_copy import copy_records
from cellauto.records.backend.pg_errors import dropped, harmless, map_error

if TYPE_CHECKING:
    from cellauto.records.backend.pg import PgBackend

__all__ = ["PgConn", "configure", "one_value", "translate"]

_T = TypeVar("_T")


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


def configure(conn: psycopg.Connection[Any]) -> None:
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
            if not (dropped(raw, exc) and not self._tx_open and harmless(sql)):
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
            copy_records(raw, rows)
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
        return int(one_value(self, "SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn"))

    def server_now_ns(self) -> int:
        return time.time_ns() + self.backend.clock_offset_ns(self)


def one_value(conn: PgConn, sql: str) -> Any:
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
