"""The journal's database backend: where the journal is, and what its engine does its own way.

A journal is at a :class:`Location`: an SQLite file path (the embedded default) or a
``postgresql://`` URL (issue 15; parsed here, refused until the PostgreSQL backend lands).
The SQL of cellauto stays in the modules that own it, written in the subset both engines
accept, and runs on a :class:`Conn` (the part of :class:`sqlite3.Connection` the code
uses; a :class:`sqlite3.Connection` is one as it is, at no cost). What the engines do
differently is a function here taking the connection: write and read transactions, the
durability of a commit, the records insert, the list of tables, the server's clock.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

from cellauto.errors import JournalOpenError
from cellauto.records.backend import sqlite as _sqlite_backend
from cellauto.records.backend.locks import Lock, check_order

__all__ = [
    "DB_ENV",
    "DEFAULT_DB",
    "Conn",
    "Cursor",
    "DbError",
    "Location",
    "Lock",
    "SqliteBackend",
    "acquire",
    "begin_read",
    "begin_write",
    "change_counter",
    "describe",
    "end_read",
    "has_table",
    "insert_records",
    "open_backend",
    "reading",
    "server_now_ns",
    "set_durable",
    "sync",
    "table_sql",
    "tables",
]

DB_ENV = "CELLAUTO_DB"
"""The environment variable naming the journal when ``--db`` is not given."""

DEFAULT_DB = "cellauto.db"
"""The journal when neither ``--db`` nor ``$CELLAUTO_DB`` names one."""

PG_SCHEMES = ("postgresql", "postgres")

DbError = sqlite3.Error
"""The class every database error of either backend is (PostgreSQL errors are mapped onto
the :mod:`sqlite3` classes, the original as ``__cause__``)."""


class Cursor(Protocol):
    """The part of :class:`sqlite3.Cursor` the code uses."""

    @property
    def rowcount(self) -> int: ...

    @property
    def description(self) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


@runtime_checkable
class Conn(Protocol):
    """The part of :class:`sqlite3.Connection` the code uses (it satisfies this as it is)."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> Cursor: ...

    @property
    def in_transaction(self) -> bool: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Location:
    """Where a journal is: an SQLite file ``path``, or a PostgreSQL ``url``."""

    path: Path | None = None
    url: str | None = None

    @classmethod
    def parse(cls, value: str | os.PathLike[str] | Location) -> Location:
        """A path, a ``postgresql://`` (or ``postgres://``) URL, or a Location as it is."""
        if isinstance(value, Location):
            return value
        if isinstance(value, str):
            scheme = value.split(":", 1)[0].lower() if "://" in value else ""
            if scheme in PG_SCHEMES:
                parts = urlsplit(value)
                if not parts.hostname and not parts.path.strip("/") and not parts.query:
                    raise JournalOpenError(
                        f"{describe_url(value)} names no server or database; write "
                        "postgresql://USER@HOST[:PORT]/DATABASE"
                    )
                return cls(url=value)
            if scheme:
                raise JournalOpenError(
                    f"journal location {value!r}: unknown scheme {scheme!r}; give a file "
                    "path (SQLite) or a postgresql:// URL"
                )
        return cls(path=Path(value))

    @classmethod
    def from_env(cls, value: str | os.PathLike[str] | Location | None = None) -> Location:
        """``value``, else ``$CELLAUTO_DB``, else ``./cellauto.db``."""
        if value is None:
            value = os.environ.get(DB_ENV) or DEFAULT_DB
        return cls.parse(value)

    @property
    def is_postgresql(self) -> bool:
        return self.url is not None

    def sqlite_path(self) -> Path:
        """The file of an SQLite location; a PostgreSQL one is refused (not yet supported)."""
        if self.path is None:
            raise _not_yet(self)
        return self.path

    def describe(self) -> str:
        """For messages: the path, or the URL without its password."""
        return str(self.path) if self.path is not None else describe_url(self.url or "")

    def __str__(self) -> str:
        return self.describe()


def describe_url(url: str) -> str:
    """``url`` with its password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


def describe(location: str | os.PathLike[str] | Location) -> str:
    return Location.parse(location).describe()


def _not_yet(location: Location) -> JournalOpenError:
    return JournalOpenError(
        f"journal {location.describe()}: PostgreSQL journals are not yet supported by this "
        "cellauto (issue 15, track A); use an SQLite file path"
    )


class SqliteBackend:
    """Opens connections to the SQLite journal file at ``path``."""

    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path

    def connect(self, *, create: bool, timeout_s: float, any_thread: bool = False) -> Conn:
        """Open (and with ``create``, create) the journal, checked (see sqlite.connect)."""
        return _sqlite_backend.connect(
            self.path, create=create, timeout_s=timeout_s, any_thread=any_thread
        )

    def connect_writer(self, *, timeout_s: float) -> Conn:
        """The writer thread's connection to an opened journal (no checks)."""
        return _sqlite_backend.connect_writer(self.path, timeout_s=timeout_s)

    def connect_read_only(
        self, *, any_thread: bool = True, query_only: bool = False, timeout_s: float = 5.0
    ) -> Conn:
        """A connection that does not write, to a journal opened and checked elsewhere
        (see :func:`cellauto.records.backend.sqlite.connect_read_only`)."""
        return _sqlite_backend.connect_read_only(
            self.path, any_thread=any_thread, query_only=query_only, timeout_s=timeout_s
        )

    def sync(self) -> bool:
        """Make every earlier commit durable; False when there was nothing to sync."""
        return _sqlite_backend.sync(self.path)


def open_backend(location: str | os.PathLike[str] | Location) -> SqliteBackend:
    """The backend of the journal at ``location`` (PostgreSQL: refused, not yet supported)."""
    where = Location.parse(location)
    if where.path is None:
        raise _not_yet(where)
    return SqliteBackend(where.path)


# -- what each engine does its own way, on a connection ---------------------------------------


def begin_write(conn: Conn, *locks: Lock) -> None:
    """Begin a write transaction holding ``locks`` (in their order) until it ends; without
    locks, one that takes none (its rows are its own).

    SQLite: ``BEGIN IMMEDIATE`` (its one write lock covers every name), without locks a
    plain (deferred) ``BEGIN``.
    """
    check_order((), locks)
    _sqlite_backend.begin_write(_sqlite(conn), immediate=bool(locks))


def acquire(conn: Conn, *locks: Lock) -> None:
    """Take ``locks`` (in their order) inside the open write transaction, until it ends
    (SQLite: held already, by ``BEGIN IMMEDIATE``)."""
    check_order((), locks)


def begin_read(conn: Conn, *, query_only: bool = False) -> None:
    """Begin a read transaction: one snapshot for every statement until it ends.
    ``query_only``: statements that would write are refused meanwhile (end it with
    :func:`end_read`)."""
    _sqlite_backend.begin_read(_sqlite(conn), query_only=query_only)


def end_read(conn: Conn, *, query_only: bool = False) -> None:
    """End a read transaction begun by :func:`begin_read` with the same ``query_only``."""
    _sqlite_backend.end_read(_sqlite(conn), query_only=query_only)


@contextmanager
def reading(conn: Conn) -> Iterator[Conn]:
    """A read-only snapshot of ``conn`` for the block."""
    begin_read(conn, query_only=True)
    try:
        yield conn
    finally:
        end_read(conn, query_only=True)


def set_durable(conn: Conn, durable: bool) -> None:
    """Whether the connection's next commits are durable when they return (SQLite:
    ``synchronous=FULL``) or may be lost by a crash until a later durable commit or
    :meth:`SqliteBackend.sync` (``NORMAL``; never corrupted)."""
    _sqlite_backend.set_durable(_sqlite(conn), durable)


def sync(backend: SqliteBackend) -> bool:
    """Make every earlier commit of the journal durable (see :meth:`SqliteBackend.sync`)."""
    return backend.sync()


def insert_records(conn: Conn, rows: Iterable[Sequence[object]]) -> None:
    """Insert ``records`` rows (run_id, seq, kind, process_time_s, wall_time_ns, body,
    prev_hash, hash) in the open transaction."""
    _sqlite_backend.insert_records(_sqlite(conn), rows)


def tables(conn: Conn) -> set[str]:
    """The names of the journal's tables and indexes."""
    return _sqlite_backend.tables(_sqlite(conn))


def has_table(conn: Conn, name: str) -> bool:
    """Whether the journal has the table (or index) ``name`` (older schemas lack some)."""
    return _sqlite_backend.has_table(_sqlite(conn), name)


def change_counter(conn: Conn) -> int:
    """A number that changes when another connection commits to the journal (SQLite:
    ``PRAGMA data_version``, a few microseconds): pollers read again only then."""
    return _sqlite_backend.change_counter(_sqlite(conn))


def table_sql(conn: Conn, names: Sequence[str]) -> list[str]:
    """The ``CREATE TABLE`` statements of the named tables that exist."""
    return _sqlite_backend.table_sql(_sqlite(conn), names)


def server_now_ns(conn: Conn | None = None) -> int:
    """The database's wall clock in ns (SQLite: this machine's)."""
    return _sqlite_backend.server_now_ns()


def _sqlite(conn: Conn) -> sqlite3.Connection:
    # the only backend yet: a PostgreSQL connection will be told apart here (track A)
    return cast(sqlite3.Connection, conn)
