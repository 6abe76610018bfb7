"""The journal's SQLite file: opening it, its schema, and the read queries."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from cellauto.errors import (
    JournalDamagedError,
    JournalError,
    JournalNotFoundError,
    JournalOpenError,
)
from cellauto.records._schema import (
    CREATE_ALARMS,
    CREATE_MATERIALS,
    CREATE_OWNERS,
    CREATE_REVIEW,
    CREATE_SITE,
    CREATE_SITE_ROW_INDEXES,
    READABLE_VERSIONS,
    SCHEMA_VERSION,
)

# The schema version and the upgrade live in :mod:`cellauto.records._schema`: a file of
# version 2 or 3 is read as it is and becomes version 4 in its next claim or site write.

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

_SCHEMA = (
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
)

INSERT_RECORD = (
    "INSERT INTO records (run_id, seq, kind, process_time_s, wall_time_ns, body, prev_hash, hash)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_LEDGER = (
    "INSERT INTO ledger (seq, kind, run_id, run_seq, run_hash, wall_time_ns,"
    " sealed_wall_time_ns, prev_hash, body, hash, signature)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
PUT_LEDGER_HEAD = (
    "INSERT OR REPLACE INTO ledger_head (id, seq, hash, signature) VALUES (1, ?, ?, ?)"
)
PUT_PUBLIC_KEY = "INSERT OR IGNORE INTO meta (key, value) VALUES ('public_key', ?)"

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
    """A run's ``run_sealed`` ledger entry, as stored (nothing checked)."""

    last_seq: int
    head_hash: str
    sealed_wall_time_ns: int


class LedgerRow(NamedTuple):
    """One row of the ``ledger`` table, as stored (nothing checked)."""

    seq: int
    kind: str
    run_id: str
    run_seq: int
    run_hash: str
    wall_time_ns: int
    sealed_wall_time_ns: int | None
    prev_hash: str
    body: str
    hash: str
    signature: str


class LedgerHead(NamedTuple):
    """The ``ledger_head`` row: the last entry's seq and hash, signed."""

    seq: int
    hash: str
    signature: str


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
    if row is None or row[0] not in READABLE_VERSIONS:
        found = "none" if row is None else row[0]
        raise JournalOpenError(
            f"journal {path} has schema version {found}; this cellauto reads versions "
            f"{', '.join(READABLE_VERSIONS)} (version 2 added the signed ledger of seals "
            "and anchors, version 3 run ownership, version 4 the site chain of accounts, "
            "training and signatures): "
            "read and verify it with the cellauto release that wrote it, and record new "
            "runs in a new journal file"
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


def ledger_run_ids(conn: sqlite3.Connection) -> list[str]:
    """The distinct run ids named by ledger entries (site anchors name no run)."""
    query = "SELECT DISTINCT run_id FROM ledger WHERE kind != 'site_anchor' ORDER BY run_id"
    return [run_id for (run_id,) in conn.execute(query)]


def has_run(conn: sqlite3.Connection, run_id: str) -> bool:
    query = "SELECT 1 FROM records WHERE run_id = ? UNION ALL SELECT 1 FROM ledger WHERE run_id = ?"
    return conn.execute(query, (run_id, run_id)).fetchone() is not None


def seal_of(conn: sqlite3.Connection, run_id: str) -> Seal | None:
    """The run's stored ``run_sealed`` ledger entry (unverified), or None."""
    row = conn.execute(
        "SELECT run_seq, run_hash, sealed_wall_time_ns FROM ledger"
        " WHERE run_id = ? AND kind = 'run_sealed' ORDER BY seq DESC LIMIT 1",
        (run_id,),
    ).fetchone()
    return None if row is None else Seal(*row)


def last_anchored_seq(conn: sqlite3.Connection, run_id: str) -> int | None:
    """The highest record seq a stored ledger entry of the run covers (unverified)."""
    row = conn.execute("SELECT max(run_seq) FROM ledger WHERE run_id = ?", (run_id,)).fetchone()
    return None if row is None else row[0]


_LEDGER_COLUMNS = (
    "seq, kind, run_id, run_seq, run_hash, wall_time_ns, sealed_wall_time_ns, prev_hash,"
    " body, hash, signature"
)


def ledger_rows(conn: sqlite3.Connection) -> Iterator[LedgerRow]:
    for row in conn.execute(f"SELECT {_LEDGER_COLUMNS} FROM ledger ORDER BY seq"):
        yield LedgerRow(*row)


def last_ledger_row(conn: sqlite3.Connection) -> LedgerRow | None:
    row = conn.execute(f"SELECT {_LEDGER_COLUMNS} FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
    return None if row is None else LedgerRow(*row)


def ledger_head(conn: sqlite3.Connection) -> LedgerHead | None:
    row = conn.execute("SELECT seq, hash, signature FROM ledger_head WHERE id = 1").fetchone()
    return None if row is None else LedgerHead(*row)


def stored_public_key(conn: sqlite3.Connection) -> str | None:
    """The journal's own copy of its public key (hex), or None."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'public_key'").fetchone()
    return None if row is None else str(row[0])


def hashes_at(conn: sqlite3.Connection, run_id: str, seqs: list[int]) -> dict[int, str]:
    """The stored hash of each of the run's records at ``seqs`` (absent seqs left out)."""
    found: dict[int, str] = {}
    for seq in seqs:
        row = conn.execute(
            "SELECT hash FROM records WHERE run_id = ? AND seq = ?", (run_id, seq)
        ).fetchone()
        if row is not None:
            found[seq] = row[0]
    return found


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


def rows_after(conn: sqlite3.Connection, run_id: str, seq: int) -> list[StoredRow]:
    """The run's rows after ``seq``, in seq order (what a reader holding the first
    ``seq + 1`` records does not have yet)."""
    cursor = conn.execute(
        f"SELECT {_ROW_COLUMNS} FROM records WHERE run_id = ? AND seq > ? ORDER BY seq",
        (run_id, seq),
    )
    return [StoredRow(*row) for row in cursor]


def count_rows(conn: sqlite3.Connection, run_id: str) -> int:
    return int(
        conn.execute("SELECT count(*) FROM records WHERE run_id = ?", (run_id,)).fetchone()[0]
    )


def seqs_where(conn: sqlite3.Connection, run_id: str, column: str, value: str) -> list[int]:
    """Seqs of the run's rows whose ``hash`` or ``prev_hash`` column equals ``value``."""
    if column not in ("hash", "prev_hash"):
        raise ValueError(f"seqs_where: column must be hash or prev_hash, not {column!r}")
    query = f"SELECT seq FROM records WHERE run_id = ? AND {column} = ? ORDER BY seq"
    return [seq for (seq,) in conn.execute(query, (run_id, value))]


def row_at(conn: sqlite3.Connection, run_id: str, seq: int) -> StoredRow | None:
    """The run's stored row ``seq``, or None."""
    row = conn.execute(
        f"SELECT {_ROW_COLUMNS} FROM records WHERE run_id = ? AND seq = ?", (run_id, seq)
    ).fetchone()
    return None if row is None else StoredRow(*row)
