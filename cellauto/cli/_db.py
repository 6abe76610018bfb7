"""The ``--db`` option every command that reads or writes a journal takes.

``--db`` names the journal: a file path (SQLite), or a ``postgresql://`` URL naming a
database and, by its fragment (``#schema``), the schema holding the journal (issue 15).
Without ``--db``, ``$CELLAUTO_DB`` names it, else ``./cellauto.db``. The parsed value is a
:class:`~cellauto.records.backend.Location`; messages print it without a password.
"""

from __future__ import annotations

import argparse
import os

from cellauto.errors import JournalNotFoundError, JournalOpenError
from cellauto.records.backend import DB_ENV, DEFAULT_DB, Location, open_backend

__all__ = [
    "DB_ENV",
    "DEFAULT_DB",
    "add_db_argument",
    "db_value",
    "default_db",
    "journal_exists",
]

DB_HELP = f"journal: a file path or a postgresql:// URL (default ${DB_ENV}, else ./{DEFAULT_DB})"


def default_db() -> str:
    """``$CELLAUTO_DB`` when set (and not empty), else ``cellauto.db``."""
    return os.environ.get(DB_ENV) or DEFAULT_DB


def db_value(value: str) -> Location:
    """``--db``'s value as a Location; one that names no journal location (an unknown
    scheme, a URL without server or database) is refused here (exit 2, with why), before
    anything is read or written."""
    try:
        return Location.parse(value)
    except JournalOpenError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_db_argument(p: argparse.ArgumentParser) -> None:
    """Add ``--db`` (default: ``$CELLAUTO_DB``, else ``./cellauto.db``, read now)."""
    p.add_argument("--db", default=default_db(), type=db_value, help=DB_HELP)


def journal_exists(location: Location) -> bool:
    """Whether a journal is at ``location``: its file exists (SQLite), or its schema holds
    one (PostgreSQL; asks the server, whose errors other than "no journal" are raised)."""
    if location.path is not None:
        return location.path.exists()
    try:
        open_backend(location).connect(create=False, timeout_s=5.0).close()
    except JournalNotFoundError:
        return False
    return True
