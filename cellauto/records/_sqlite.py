"""The journal's SQLite file: opening it, its schema, and the read queries."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from cellauto.errors import JournalError, JournalNotFoundError, JournalOpenError

SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records (
    run_id TEXT, seq INTEGER, kind TEXT, process_time_s REAL, wall_time_ns INTEGER,
    body TEXT, prev_hash TEXT, hash TEXT,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS seals (
    run_id TEXT PRIMARY KEY, last_seq INTEGER, head_hash TEXT, sealed_wall_time_ns INTEGER
);
"""

INSERT_RECORD = (
    "INSERT INTO records (run_id, seq, kind, process_time_s, wall_time_ns, body, prev_hash, hash)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_SEAL = (
    "INSERT INTO seals (run_id, last_seq, head_hash, sealed_wall_time_ns) VALUES (?, ?, ?, ?)"
)

_ROW_COLUMNS = "seq, kind, process_time_s, wall_time_ns, body, prev_hash, hash"


class StoredRow(NamedTuple):
    """One row of the ``records`` table of a run, as stored (nothing checked)."""

    seq: int
    kind: str
    process_time_s: float
    wall_time_ns: int
    body: str
    prev_hash: str
    hash: str


class Seal(NamedTuple):
    """One row of the ``seals`` table."""

    last_seq: int
    head_hash: str
    sealed_wall_time_ns: int


def connect(path: Path, *, create: bool, timeout_s: float) -> sqlite3.Connection:
    """Open (and with ``create``, create) the journal at ``path``, in WAL mode."""
    if not create and not path.is_file():
        raise JournalNotFoundError(
            f"no journal at {path}; check the path (a journal is created when a run starts)"
        )
    uri = f"{path.resolve().as_uri()}?mode={'rwc' if create else 'rw'}"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=timeout_s, isolation_level=None)
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


def _prepare(conn: sqlite3.Connection, path: Path) -> None:
    try:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
        if tables and "meta" not in tables:
            raise JournalOpenError(f"{path} is an SQLite file but not a cellauto journal")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        if not tables:
            conn.executescript(
                f"BEGIN;{_SCHEMA}INSERT OR IGNORE INTO meta (key, value)"
                f" VALUES ('schema_version', '{SCHEMA_VERSION}');COMMIT;"
            )
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.Error as exc:
        error = JournalError if "locked" in str(exc) else JournalOpenError
        raise error(f"cannot open journal {path}: {exc}") from exc
    if row is None or row[0] != str(SCHEMA_VERSION):
        found = "none" if row is None else row[0]
        raise JournalOpenError(
            f"journal {path} has schema version {found}; this cellauto reads version "
            f"{SCHEMA_VERSION}: open it with the cellauto release that wrote it"
        )


def run_ids(conn: sqlite3.Connection, prefix: str = "") -> Iterator[str]:
    """Yield the distinct run ids starting with ``prefix``, in order (one index seek each)."""
    row = conn.execute(
        "SELECT run_id FROM records WHERE run_id >= ? ORDER BY run_id LIMIT 1", (prefix,)
    ).fetchone()
    while row is not None and row[0].startswith(prefix):
        yield row[0]
        row = conn.execute(
            "SELECT run_id FROM records WHERE run_id > ? ORDER BY run_id LIMIT 1", (row[0],)
        ).fetchone()


def sealed_run_ids(conn: sqlite3.Connection) -> list[str]:
    return [run_id for (run_id,) in conn.execute("SELECT run_id FROM seals ORDER BY run_id")]


def has_run(conn: sqlite3.Connection, run_id: str) -> bool:
    query = "SELECT 1 FROM records WHERE run_id = ? UNION ALL SELECT 1 FROM seals WHERE run_id = ?"
    return conn.execute(query, (run_id, run_id)).fetchone() is not None


def seal_of(conn: sqlite3.Connection, run_id: str) -> Seal | None:
    row = conn.execute(
        "SELECT last_seq, head_hash, sealed_wall_time_ns FROM seals WHERE run_id = ?", (run_id,)
    ).fetchone()
    return None if row is None else Seal(*row)


def edge_row(conn: sqlite3.Connection, run_id: str, *, last: bool) -> StoredRow | None:
    """The first (or last) stored row of a run, or None."""
    order = "DESC" if last else "ASC"
    row = conn.execute(
        f"SELECT {_ROW_COLUMNS} FROM records WHERE run_id = ? ORDER BY seq {order} LIMIT 1",
        (run_id,),
    ).fetchone()
    return None if row is None else StoredRow(*row)


def last_row_of_kind(conn: sqlite3.Connection, run_id: str, kind: str) -> StoredRow | None:
    row = conn.execute(
        f"SELECT {_ROW_COLUMNS} FROM records WHERE run_id = ? AND kind = ?"
        " ORDER BY seq DESC LIMIT 1",
        (run_id, kind),
    ).fetchone()
    return None if row is None else StoredRow(*row)


def stored_rows(
    conn: sqlite3.Connection, run_id: str, kinds: list[str] | None = None
) -> Iterator[StoredRow]:
    """Yield a run's rows in seq order, optionally only those of some kinds."""
    if kinds is None:
        cursor = conn.execute(
            f"SELECT {_ROW_COLUMNS} FROM records WHERE run_id = ? ORDER BY seq", (run_id,)
        )
    else:
        marks = ", ".join("?" * len(kinds))
        cursor = conn.execute(
            f"SELECT {_ROW_COLUMNS} FROM records WHERE run_id = ? AND kind IN ({marks})"
            " ORDER BY seq",
            (run_id, *kinds),
        )
    for row in cursor:
        yield StoredRow(*row)


def count_rows(conn: sqlite3.Connection, run_id: str) -> int:
    return conn.execute("SELECT count(*) FROM records WHERE run_id = ?", (run_id,)).fetchone()[0]


def seqs_where(conn: sqlite3.Connection, run_id: str, column: str, value: str) -> list[int]:
    """Seqs of the run's rows whose ``hash`` or ``prev_hash`` column equals ``value``."""
    if column not in ("hash", "prev_hash"):
        raise ValueError(f"seqs_where: column must be hash or prev_hash, not {column!r}")
    query = f"SELECT seq FROM records WHERE run_id = ? AND {column} = ? ORDER BY seq"
    return [seq for (seq,) in conn.execute(query, (run_id, value))]
