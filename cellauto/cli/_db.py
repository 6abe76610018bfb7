"""The ``--db`` option every command that reads or writes a journal takes.

``--db`` names the journal: a file path (SQLite), or a ``postgresql://`` URL (issue 15:
parsed, and refused as not yet supported until the PostgreSQL backend lands). Without
``--db``, ``$CELLAUTO_DB`` names it, else ``./cellauto.db``.
"""

from __future__ import annotations

import argparse
import os

from cellauto.errors import JournalOpenError
from cellauto.records.backend import DB_ENV, DEFAULT_DB, Location

__all__ = ["DB_ENV", "DEFAULT_DB", "add_db_argument", "db_value", "default_db"]


def default_db() -> str:
    """``$CELLAUTO_DB`` when set (and not empty), else ``cellauto.db``."""
    return os.environ.get(DB_ENV) or DEFAULT_DB


def db_value(value: str) -> str:
    """``--db``'s value as given; a location this cellauto cannot open is refused here
    (exit 2, with why), before anything is read or written."""
    try:
        Location.parse(value).sqlite_path()
    except JournalOpenError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def any_db_value(value: str) -> str:
    """``--db``'s value for a command that works on either backend: an SQLite path or a
    ``postgresql://`` URL (anything else refused, exit 2)."""
    try:
        Location.parse(value)
    except JournalOpenError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def add_db_argument(p: argparse.ArgumentParser, *, postgresql: bool = False) -> None:
    """Add ``--db`` (default: ``$CELLAUTO_DB``, else ``./cellauto.db``, read now).
    ``postgresql``: the command also takes a ``postgresql://`` URL."""
    p.add_argument(
        "--db",
        default=default_db(),
        type=any_db_value if postgresql else db_value,
        help=f"journal file or postgresql:// URL (default ${DB_ENV}, else ./{DEFAULT_DB})"
        if postgresql
        else f"journal file (default ${DB_ENV}, else ./{DEFAULT_DB})",
    )
