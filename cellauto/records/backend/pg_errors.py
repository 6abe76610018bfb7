"""How a psycopg error reaches cellauto: as the :mod:`sqlite3` class the code already catches.

:func:`map_error` keeps the message and the SQLSTATE (``sqlstate``) and says "database is
locked" for a lock wait past the connection's timeout, as SQLite does; :func:`dropped`
tells a connection that is gone from a statement that failed, and :func:`harmless` which
statements may run again on a new connection after one dropped (issue 15, §2.2).
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

import psycopg
import psycopg.errors as pg_errors
from psycopg_pool import PoolTimeout

__all__ = ["dropped", "harmless", "map_error"]

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


def dropped(raw: psycopg.Connection[Any], exc: psycopg.Error) -> bool:
    """Whether ``exc`` says the connection itself is gone (the server ended the session,
    or the network did), rather than the statement failing."""
    state = getattr(exc, "sqlstate", None) or ""
    return (
        raw.broken
        or raw.closed
        or state.startswith(("57P", "08"))  # admin shutdown, crash, connection exception
        or (isinstance(exc, psycopg.OperationalError) and not state)  # libpq: socket gone
    )


def harmless(sql: str) -> bool:
    """Whether ``sql`` may run again after its connection dropped (outside a transaction):
    it began one, read, or set a session setting — it cannot have committed a write."""
    first = re.match(r"\s*([A-Za-z]+)", sql)
    return first is not None and first.group(1).upper() in ("BEGIN", "SELECT", "SET", "SHOW")
