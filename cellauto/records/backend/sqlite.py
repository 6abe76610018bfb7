"""The SQLite backend: opening a journal file, and what the engine does its own way.

Everything here is what the code did before the seam of issue 15, moved: the checks on
opening (``quick_check``, WAL, schema creation, version check), the writer thread's
connection, and the statements that are SQLite's own (``BEGIN IMMEDIATE``, ``PRAGMA``,
``sqlite_master``, the fsync of the ``-wal`` file).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cellauto.errors import (
    JournalDamagedError,
    JournalError,
    JournalNotFoundError,
    JournalOpenError,
)
from cellauto.records._schema import (
    CREATE_ALARMS,
    CREATE_CONTROLLERS,
    CREATE_MATERIALS,
    CREATE_OWNERS,
    CREATE_REVIEW,
    CREATE_SITE,
    CREATE_SITE_ROW_INDEXES,
    READABLE_VERSIONS,
    SCHEMA_VERSION,
)

WAL_AUTOCHECKPOINT_PAGES = 8192
"""Checkpoint the WAL at 32 MB (SQLite's default: 4 MB). A page changed by many commits
between two checkpoints is written to the database file once; with 1,000 runs writing
at once, the 4 MB default checkpointed after nearly every commit."""

# Layout of ``records`` (the same columns and queries either way; a journal created by an
# earlier release keeps its layout and is read and written as before): rows are stored
# in the order they are appended (rowid table), so that a commit writes whole new pages
# at the end of the table, and found by run through the (run_id, seq) unique index. The
# earlier layout clustered the rows by (run_id, seq) (WITHOUT ROWID): with many runs
# appending at once, each commit rewrote one half-full leaf page per run it touched,
# writing 12-27 KB for a 0.6 KB record (see bench/bench_journal.py).

SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records (
    run_id TEXT, seq INTEGER, kind TEXT, process_time_s REAL, wall_time_ns INTEGER,
    body TEXT, prev_hash TEXT, hash TEXT,
    UNIQUE (run_id, seq)
);
CREATE TABLE IF NOT EXISTS ledger (
    seq INTEGER PRIMARY KEY, kind TEXT, run_id TEXT, run_seq INTEGER, run_hash TEXT,
    wall_time_ns INTEGER, sealed_wall_time_ns INTEGER, prev_hash TEXT, body TEXT, hash TEXT,
    signature TEXT
);
CREATE INDEX IF NOT EXISTS ledger_by_run ON ledger (run_id, kind, seq);
CREATE TABLE IF NOT EXISTS ledger_head (
    id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER, hash TEXT, signature TEXT
);
"""
    + CREATE_OWNERS
    + CREATE_SITE
    + CREATE_MATERIALS
    + CREATE_REVIEW
    + CREATE_ALARMS
    + CREATE_SITE_ROW_INDEXES
    + CREATE_CONTROLLERS
)

INSERT_RECORD = (
    "INSERT INTO records (run_id, seq, kind, process_time_s, wall_time_ns, body, prev_hash, hash)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def connect(
    path: Path, *, create: bool, timeout_s: float, any_thread: bool = False
) -> sqlite3.Connection:
    """Open (and with ``create``, create) the journal at ``path``, in WAL mode.

    ``any_thread``: the connection may be used from another thread than the one that
    opened it (one thread at a time: the caller serializes, as the web app's pools do).

    An existing file is checked first (``PRAGMA quick_check``), before any statement
    that could write to it: a damaged file, or one that is not a database, is refused
    with :class:`JournalDamagedError` and left as it was.
    """
    if not create and not path.is_file():
        raise JournalNotFoundError(
            f"no journal at {path}; check the path (a journal is created when a run starts)"
        )
    uri = f"{path.resolve().as_uri()}?mode={'rwc' if create else 'rw'}"
    try:
        conn = sqlite3.connect(
            uri,
            uri=True,
            timeout=timeout_s,
            isolation_level=None,
            check_same_thread=not any_thread,
        )
    except sqlite3.Error as exc:
        raise JournalOpenError(
            f"cannot open journal {path}: {exc} (does its folder exist and may it be written?)"
        ) from exc
    try:
        _prepare(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


def connect_writer(path: Path, *, timeout_s: float) -> sqlite3.Connection:
    """A second connection to an opened journal, for its writer thread (no checks)."""
    try:
        conn = sqlite3.connect(
            path, timeout=timeout_s, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
    except sqlite3.Error as exc:
        raise JournalOpenError(f"cannot open journal {path} for writing: {exc}") from exc
    return conn


def connect_read_only(
    path: Path, *, any_thread: bool = True, query_only: bool = False, timeout_s: float = 5.0
) -> sqlite3.Connection:
    """A connection that does not write, without the checks of :func:`connect` (pollers
    and views of a journal another object opened and checked). The file is opened
    read-only; with ``query_only`` it is opened read-write and the connection refuses to
    write (``PRAGMA query_only``)."""
    conn = sqlite3.connect(
        f"{path.resolve().as_uri()}?mode={'rw' if query_only else 'ro'}",
        uri=True,
        timeout=timeout_s,
        isolation_level=None,
        check_same_thread=not any_thread,
    )
    if query_only:
        conn.execute("PRAGMA query_only=ON")
    return conn


def _check_intact(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse a damaged file before anything writes to it (reads only)."""
    try:
        problems = [row[0] for row in conn.execute("PRAGMA quick_check(5)")]
    except sqlite3.DatabaseError as exc:
        if "not a database" in str(exc) or "malformed" in str(exc):
            problems = [str(exc)]
        elif "locked" in str(exc):
            raise JournalError(f"cannot open journal {path}: {exc}") from exc
        else:
            raise JournalOpenError(f"cannot open journal {path}: {exc}") from exc
    if problems != ["ok"]:
        what = "; ".join(str(p) for p in problems)
        raise JournalDamagedError(
            f"journal {path} is damaged or is not an SQLite database ({what}); nothing was "
            "written to it. Keep the file as it is for investigation and restore the "
            "journal from its backup (cellauto verify --head checks a restored copy)"
        )


def _prepare(conn: sqlite3.Connection, path: Path) -> None:
    _check_intact(conn, path)
    try:
        found = tables(conn)
        if found and "meta" not in found:
            raise JournalOpenError(f"{path} is an SQLite file but not a cellauto journal")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        if not found:
            conn.executescript(
                f"BEGIN;{SCHEMA}INSERT OR IGNORE INTO meta (key, value)"
                f" VALUES ('schema_version', '{SCHEMA_VERSION}');COMMIT;"
            )
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.Error as exc:
        error = JournalError if "locked" in str(exc) else JournalOpenError
        raise error(f"cannot open journal {path}: {exc}") from exc
    if row is None or row[0] not in READABLE_VERSIONS:
        found_version = "none" if row is None else row[0]
        raise JournalOpenError(
            f"journal {path} has schema version {found_version}; this cellauto reads versions "
            f"{', '.join(READABLE_VERSIONS)} (version 2 added the signed ledger of seals "
            "and anchors, version 3 run ownership, version 4 the site chain of accounts, "
            "training and signatures): "
            "read and verify it with the cellauto release that wrote it, and record new "
            "runs in a new journal file"
        )


# -- what the engine does its own way (see cellauto.records.backend) ------------------------


def begin_write(conn: sqlite3.Connection, *, immediate: bool) -> None:
    """SQLite's one write lock (``immediate``) covers every named lock."""
    conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")


def begin_read(conn: sqlite3.Connection, *, query_only: bool) -> None:
    if query_only:
        conn.execute("PRAGMA query_only=ON")
    conn.execute("BEGIN")


def end_read(conn: sqlite3.Connection, *, query_only: bool) -> None:
    if conn.in_transaction:
        conn.execute("COMMIT")
    if query_only:
        conn.execute("PRAGMA query_only=OFF")


def set_durable(conn: sqlite3.Connection, durable: bool) -> None:
    conn.execute("PRAGMA synchronous=FULL" if durable else "PRAGMA synchronous=NORMAL")


def sync(path: Path) -> bool:
    """fsync the ``-wal`` file of the journal at ``path``: every earlier commit becomes
    durable. False when there is no WAL file (checkpointed: all in the database file);
    raises OSError."""
    wal = path.with_name(path.name + "-wal")
    try:
        fd = os.open(wal, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def insert_records(conn: sqlite3.Connection, rows: Iterable[Sequence[object]]) -> None:
    conn.executemany(INSERT_RECORD, rows)


def tables(conn: sqlite3.Connection) -> set[str]:
    return {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}


def has_table(conn: sqlite3.Connection, name: str) -> bool:
    return (
        conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (name,)).fetchone() is not None
    )


def change_counter(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA data_version").fetchone()[0])


def table_sql(conn: sqlite3.Connection, names: Sequence[str]) -> list[str]:
    """The ``CREATE TABLE`` statements of the named tables that exist (in no set order)."""
    marks = ", ".join("?" * len(names))
    query = f"SELECT sql FROM sqlite_master WHERE type = 'table' AND name IN ({marks})"
    return [sql for (sql,) in conn.execute(query, tuple(names))]


def server_now_ns() -> int:
    return time.time_ns()


if TYPE_CHECKING:
    from cellauto.records.backend import Conn

    def _a_connection_is_a_conn(conn: sqlite3.Connection) -> Conn:
        """mypy checks here that sqlite3.Connection satisfies Conn (CI's mypy step)."""
        return conn
