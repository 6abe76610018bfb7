"""The journal's database backend: where the journal is, and what its engine does its own way.

A journal is at a :class:`Location`: an SQLite file path (the embedded default) or a
``postgresql://`` URL naming a database and, by its fragment (``#name``) or its
``options=-csearch_path=name``, the schema holding the journal (default ``cellauto``;
:mod:`cellauto.records.backend.pg`, which needs the ``[postgres]`` extra).
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
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

from cellauto.errors import JournalOpenError
from cellauto.records.backend import sqlite as _sqlite_backend
from cellauto.records.backend.locks import Lock, check_order

if TYPE_CHECKING:
    from cellauto.records.backend.pg import PgBackend, PgConn

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
    "is_postgresql",
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

sqlite_refused: str | None = None
"""When set, opening an SQLite journal raises :class:`JournalOpenError` saying this (the
test plugin sets it during a pass on PostgreSQL, so that a test still writing an SQLite
file fails loudly instead of testing SQLite a second time)."""

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
        """The file of an SQLite location; a PostgreSQL one is refused (a caller that works
        on the file itself)."""
        if self.path is None:
            raise _not_yet(self)
        return self.path

    @property
    def name(self) -> str:
        """The file's name, or the schema of a PostgreSQL journal (thread names, labels)."""
        if self.path is not None:
            return self.path.name
        from cellauto.records.backend.pg import split_url

        return split_url(self.url or "")[1]

    def resolve(self) -> Location:
        """The same place, absolute (an owner key: equal for equal places)."""
        if self.path is not None:
            return Location(path=self.path.resolve())
        return self

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
        f"journal {location.describe()}: PostgreSQL journals are not yet supported here "
        "(this works on an SQLite journal file); give a file path"
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


def open_backend(location: str | os.PathLike[str] | Location) -> SqliteBackend | PgBackend:
    """The backend of the journal at ``location``."""
    where = Location.parse(location)
    if where.url is not None:
        try:
            from cellauto.records.backend.pg import PgBackend
        except ImportError as exc:
            raise JournalOpenError(
                f"journal {where.describe()}: a PostgreSQL journal needs psycopg 3 (pip "
                f"install 'cellauto[postgres]'): {exc}"
            ) from exc
        return PgBackend(where.url)
    assert where.path is not None
    if sqlite_refused is not None:
        raise JournalOpenError(f"journal {where.describe()}: {sqlite_refused}")
    return SqliteBackend(where.path)


# -- what each engine does its own way, on a connection ---------------------------------------


def begin_write(conn: Conn, *locks: Lock, shared: Sequence[Lock] = ()) -> None:
    """Begin a write transaction holding ``locks`` (in their order) until it ends; without
    locks, one that takes none (its rows are its own). Those also in ``shared`` are taken
    shared (commits of run records share ``FENCE``; a takeover takes it exclusively).

    SQLite: ``BEGIN IMMEDIATE`` (its one write lock covers every name), without locks a
    plain (deferred) ``BEGIN``. PostgreSQL: transaction-scoped advisory locks.
    """
    check_order((), locks)
    if _is_sqlite(conn):
        _sqlite_backend.begin_write(_sqlite(conn), immediate=bool(locks))
    else:
        _pg(conn).begin_write(locks, shared)


def acquire(conn: Conn, *locks: Lock) -> None:
    """Take ``locks`` (in their order, after those held) inside the open write
    transaction, until it ends (SQLite: held already, by ``BEGIN IMMEDIATE``)."""
    check_order((), locks)
    if not _is_sqlite(conn):
        _pg(conn).acquire(locks)


def begin_read(conn: Conn, *, query_only: bool = False) -> None:
    """Begin a read transaction: one snapshot for every statement until it ends.
    ``query_only``: statements that would write are refused meanwhile (end it with
    :func:`end_read`). PostgreSQL: ``REPEATABLE READ`` (``READ ONLY``)."""
    if _is_sqlite(conn):
        _sqlite_backend.begin_read(_sqlite(conn), query_only=query_only)
    else:
        _pg(conn).begin_read(query_only)


def end_read(conn: Conn, *, query_only: bool = False) -> None:
    """End a read transaction begun by :func:`begin_read` with the same ``query_only``."""
    if _is_sqlite(conn):
        _sqlite_backend.end_read(_sqlite(conn), query_only=query_only)
    else:
        _pg(conn).end_read()


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
    ``synchronous=FULL``, PostgreSQL ``synchronous_commit=on``) or may be lost by a crash
    until a later durable commit or :func:`sync` (``NORMAL``, ``off``; never corrupted)."""
    if _is_sqlite(conn):
        _sqlite_backend.set_durable(_sqlite(conn), durable)
    else:
        _pg(conn).set_durable(durable)


def sync(backend: SqliteBackend | PgBackend) -> bool:
    """Make every earlier commit of the journal durable (see :meth:`SqliteBackend.sync`)."""
    return backend.sync()


def insert_records(conn: Conn, rows: Iterable[Sequence[object]]) -> None:
    """Insert ``records`` rows (run_id, seq, kind, process_time_s, wall_time_ns, body,
    prev_hash, hash) in the open transaction (PostgreSQL: binary ``COPY``)."""
    if _is_sqlite(conn):
        _sqlite_backend.insert_records(_sqlite(conn), rows)
    else:
        _pg(conn).insert_records(rows)


def tables(conn: Conn) -> set[str]:
    """The names of the journal's tables and indexes."""
    if _is_sqlite(conn):
        return _sqlite_backend.tables(_sqlite(conn))
    return _pg(conn).tables()


def has_table(conn: Conn, name: str) -> bool:
    """Whether the journal has the table (or index) ``name`` (older schemas lack some)."""
    if _is_sqlite(conn):
        return _sqlite_backend.has_table(_sqlite(conn), name)
    return name in _pg(conn).tables()


def change_counter(conn: Conn) -> int:
    """A number that changes when another connection commits to the journal (SQLite:
    ``PRAGMA data_version``, a few microseconds; PostgreSQL: the WAL position, which
    moves more often): pollers read again only then."""
    if _is_sqlite(conn):
        return _sqlite_backend.change_counter(_sqlite(conn))
    return _pg(conn).change_counter()


def table_sql(conn: Conn, names: Sequence[str]) -> list[str]:
    """The ``CREATE TABLE`` statements of the named tables that exist, in SQLite's
    dialect (PostgreSQL: from the schema they were derived from)."""
    if _is_sqlite(conn):
        return _sqlite_backend.table_sql(_sqlite(conn), names)
    found = _pg(conn).tables()
    out = []
    for statement in _sqlite_backend.SCHEMA.split(";"):
        words = statement.split()
        if words[:5] == ["CREATE", "TABLE", "IF", "NOT", "EXISTS"] and len(words) > 5:
            name = words[5].split("(")[0]
            if name in names and name in found:
                out.append(statement.strip())
    return out


def server_now_ns(conn: Conn | None = None) -> int:
    """The database's wall clock in ns (SQLite: this machine's; PostgreSQL: the server's,
    from an offset measured every minute)."""
    if conn is None or _is_sqlite(conn):
        return _sqlite_backend.server_now_ns()
    return _pg(conn).server_now_ns()


def is_postgresql(conn: Conn) -> bool:
    """Whether ``conn`` is a PostgreSQL journal's."""
    return not _is_sqlite(conn)


def _is_sqlite(conn: Conn) -> bool:
    # a PgConn says so; anything else is SQLite's (a connection, or a test's wrapper of one)
    return type(conn) is sqlite3.Connection or not getattr(conn, "is_postgresql", False)


def _sqlite(conn: Conn) -> sqlite3.Connection:
    return cast(sqlite3.Connection, conn)


def _pg(conn: Conn) -> PgConn:
    return cast("PgConn", conn)
