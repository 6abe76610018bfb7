"""The journal's SQLite file: opening it, its schema, and the read queries."""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from cellauto.records.backend import Conn
from cellauto.records.backend import sqlite as _backend

# The schema version and the upgrade live in :mod:`cellauto.records._schema`: a file of
# version 2 or 3 is read as it is and becomes version 4 in its next claim or site write.

# Opening the file moved to the SQLite backend (cellauto.records.backend.sqlite); the
# names are kept here for the modules and tests that import them from this one.
WAL_AUTOCHECKPOINT_PAGES = _backend.WAL_AUTOCHECKPOINT_PAGES
_SCHEMA = _backend.SCHEMA
INSERT_RECORD = _backend.INSERT_RECORD
connect = _backend.connect
connect_writer = _backend.connect_writer
_check_intact = _backend._check_intact
_prepare = _backend._prepare

INSERT_LEDGER = (
    "INSERT INTO ledger (seq, kind, run_id, run_seq, run_hash, wall_time_ns,"
    " sealed_wall_time_ns, prev_hash, body, hash, signature)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
PUT_LEDGER_HEAD = (
    "INSERT INTO ledger_head (id, seq, hash, signature) VALUES (1, ?, ?, ?) ON CONFLICT (id)"
    " DO UPDATE SET seq = excluded.seq, hash = excluded.hash, signature = excluded.signature"
)
PUT_PUBLIC_KEY = (
    "INSERT INTO meta (key, value) VALUES ('public_key', ?) ON CONFLICT (key) DO NOTHING"
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


def run_ids(conn: Conn, prefix: str = "") -> Iterator[str]:
    """Yield the distinct run ids starting with ``prefix``, in order (one index seek each)."""
    row = conn.execute(
        "SELECT run_id FROM records WHERE run_id >= ? ORDER BY run_id LIMIT 1", (prefix,)
    ).fetchone()
    while row is not None and row[0].startswith(prefix):
        yield row[0]
        row = conn.execute(
            "SELECT run_id FROM records WHERE run_id > ? ORDER BY run_id LIMIT 1", (row[0],)
        ).fetchone()


def ledger_run_ids(conn: Conn) -> list[str]:
    """The distinct run ids named by ledger entries (site anchors name no run)."""
    query = "SELECT DISTINCT run_id FROM ledger WHERE kind != 'site_anchor' ORDER BY run_id"
    return [run_id for (run_id,) in conn.execute(query)]


def has_run(conn: Conn, run_id: str) -> bool:
    query = "SELECT 1 FROM records WHERE run_id = ? UNION ALL SELECT 1 FROM ledger WHERE run_id = ?"
    return conn.execute(query, (run_id, run_id)).fetchone() is not None


def seal_of(conn: Conn, run_id: str) -> Seal | None:
    """The run's stored ``run_sealed`` ledger entry (unverified), or None."""
    row = conn.execute(
        "SELECT run_seq, run_hash, sealed_wall_time_ns FROM ledger"
        " WHERE run_id = ? AND kind = 'run_sealed' ORDER BY seq DESC LIMIT 1",
        (run_id,),
    ).fetchone()
    return None if row is None else Seal(*row)


def last_anchored_seq(conn: Conn, run_id: str) -> int | None:
    """The highest record seq a stored ledger entry of the run covers (unverified)."""
    row = conn.execute("SELECT max(run_seq) FROM ledger WHERE run_id = ?", (run_id,)).fetchone()
    return None if row is None else row[0]


_LEDGER_COLUMNS = (
    "seq, kind, run_id, run_seq, run_hash, wall_time_ns, sealed_wall_time_ns, prev_hash,"
    " body, hash, signature"
)


def ledger_rows(conn: Conn) -> Iterator[LedgerRow]:
    for row in conn.execute(f"SELECT {_LEDGER_COLUMNS} FROM ledger ORDER BY seq"):
        yield LedgerRow(*row)


def last_ledger_row(conn: Conn) -> LedgerRow | None:
    row = conn.execute(f"SELECT {_LEDGER_COLUMNS} FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
    return None if row is None else LedgerRow(*row)


def ledger_head(conn: Conn) -> LedgerHead | None:
    row = conn.execute("SELECT seq, hash, signature FROM ledger_head WHERE id = 1").fetchone()
    return None if row is None else LedgerHead(*row)


def stored_public_key(conn: Conn) -> str | None:
    """The journal's own copy of its public key (hex), or None."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'public_key'").fetchone()
    return None if row is None else str(row[0])


def hashes_at(conn: Conn, run_id: str, seqs: list[int]) -> dict[int, str]:
    """The stored hash of each of the run's records at ``seqs`` (absent seqs left out)."""
    found: dict[int, str] = {}
    for seq in seqs:
        row = conn.execute(
            "SELECT hash FROM records WHERE run_id = ? AND seq = ?", (run_id, seq)
        ).fetchone()
        if row is not None:
            found[seq] = row[0]
    return found


def edge_row(conn: Conn, run_id: str, *, last: bool) -> StoredRow | None:
    """The first (or last) stored row of a run, or None."""
    order = "DESC" if last else "ASC"
    row = conn.execute(
        f"SELECT {_ROW_COLUMNS} FROM records WHERE run_id = ? ORDER BY seq {order} LIMIT 1",
        (run_id,),
    ).fetchone()
    return None if row is None else StoredRow(*row)


def last_row_of_kind(conn: Conn, run_id: str, kind: str) -> StoredRow | None:
    row = conn.execute(
        f"SELECT {_ROW_COLUMNS} FROM records WHERE run_id = ? AND kind = ?"
        " ORDER BY seq DESC LIMIT 1",
        (run_id, kind),
    ).fetchone()
    return None if row is None else StoredRow(*row)


def stored_rows(conn: Conn, run_id: str, kinds: list[str] | None = None) -> Iterator[StoredRow]:
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


def rows_after(conn: Conn, run_id: str, seq: int) -> list[StoredRow]:
    """The run's rows after ``seq``, in seq order (what a reader holding the first
    ``seq + 1`` records does not have yet)."""
    cursor = conn.execute(
        f"SELECT {_ROW_COLUMNS} FROM records WHERE run_id = ? AND seq > ? ORDER BY seq",
        (run_id, seq),
    )
    return [StoredRow(*row) for row in cursor]


def count_rows(conn: Conn, run_id: str) -> int:
    return int(
        conn.execute("SELECT count(*) FROM records WHERE run_id = ?", (run_id,)).fetchone()[0]
    )


def seqs_where(conn: Conn, run_id: str, column: str, value: str) -> list[int]:
    """Seqs of the run's rows whose ``hash`` or ``prev_hash`` column equals ``value``."""
    if column not in ("hash", "prev_hash"):
        raise ValueError(f"seqs_where: column must be hash or prev_hash, not {column!r}")
    query = f"SELECT seq FROM records WHERE run_id = ? AND {column} = ? ORDER BY seq"
    return [seq for (seq,) in conn.execute(query, (run_id, value))]


def row_at(conn: Conn, run_id: str, seq: int) -> StoredRow | None:
    """The run's stored row ``seq``, or None."""
    row = conn.execute(
        f"SELECT {_ROW_COLUMNS} FROM records WHERE run_id = ? AND seq = ?", (run_id, seq)
    ).fetchone()
    return None if row is None else StoredRow(*row)
