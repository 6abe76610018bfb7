"""The journal file's schema version, the tables of each version, and the upgrade.

Versions
    2: the signed ledger (tables ``ledger`` and ``ledger_head``) replaced the ``seals``
    table; one pydantic payload model per record kind.
    3: run ownership (table ``run_owners``, ``meta.owner_generation``) and the
    ``controller_claimed`` record kind.
    4: the site chain (table ``site_records``: accounts, training, signatures, see
    :mod:`cellauto.records.site_chain`), its projections (``accounts``, ``credentials``,
    ``training``, ``tasks``, ``run_requests``) and the ledger kind ``site_anchor``.

A version 2 or 3 file is read as it is and becomes version 4 in the transaction of its
next run claim (:func:`cellauto.records._owners.claim`) or its first site write
(:class:`cellauto.records.site_store.SiteStore`): :func:`upgrade` adds the missing tables
and sets the version there. Reading never writes, so ``show`` or ``verify`` leave an
older file byte-identical; readers treat a table the file does not have yet as empty.
A release that reads only older versions refuses a version 4 file by its version,
instead of misreading a ledger kind it does not know.

This module imports nothing else of :mod:`cellauto.records`.
"""

from __future__ import annotations

import sqlite3

__all__ = [
    "CREATE_OWNERS",
    "CREATE_SITE",
    "READABLE_VERSIONS",
    "SCHEMA_VERSION",
    "is_missing_table",
    "upgrade",
]

SCHEMA_VERSION = 4
READABLE_VERSIONS = ("2", "3", "4")

CREATE_OWNERS = """
CREATE TABLE IF NOT EXISTS run_owners (
    run_id TEXT PRIMARY KEY, epoch INTEGER NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL,
    process_start TEXT, started_wall_ns INTEGER NOT NULL, heartbeat_wall_ns INTEGER NOT NULL,
    released_wall_ns INTEGER
);
"""

CREATE_SITE = """
CREATE TABLE IF NOT EXISTS site_records (
    seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, process_time_s REAL NOT NULL,
    wall_time_ns INTEGER NOT NULL, body TEXT NOT NULL, prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS accounts (
    name TEXT PRIMARY KEY, full_name TEXT NOT NULL, roles TEXT NOT NULL,
    status TEXT NOT NULL, failures INTEGER NOT NULL,
    password_seq INTEGER, password_expires_ns INTEGER, must_change INTEGER NOT NULL,
    source_seq INTEGER NOT NULL, source_hash TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS credentials (
    name TEXT NOT NULL, set_seq INTEGER NOT NULL, argon2 TEXT NOT NULL,
    PRIMARY KEY (name, set_seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS training (
    trainee TEXT NOT NULL, subject_kind TEXT NOT NULL,
    subject TEXT NOT NULL, version TEXT NOT NULL,
    trained_on TEXT NOT NULL, expires_on TEXT,
    revoked INTEGER NOT NULL, source_seq INTEGER NOT NULL, source_hash TEXT NOT NULL,
    PRIMARY KEY (trainee, subject_kind, subject, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY, run_id TEXT NOT NULL, step TEXT NOT NULL, name TEXT NOT NULL,
    phase TEXT NOT NULL, status TEXT NOT NULL,
    target_seq INTEGER NOT NULL, target_hash TEXT NOT NULL,
    summary TEXT NOT NULL, performer TEXT,
    opened_wall_ns INTEGER NOT NULL, due_process_time_s REAL,
    answer_site_seq INTEGER, updated_wall_ns INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_by_status ON tasks (status, run_id);
CREATE TABLE IF NOT EXISTS run_requests (
    request_id TEXT PRIMARY KEY, run_id TEXT NOT NULL, command TEXT NOT NULL,
    site_seq INTEGER NOT NULL, site_hash TEXT NOT NULL, status TEXT NOT NULL,
    expires_wall_ns INTEGER NOT NULL, outcome TEXT, run_seq INTEGER
);
CREATE INDEX IF NOT EXISTS run_requests_pending ON run_requests (run_id, status);
"""
"""The tables of version 4 (the site chain and its projections). Column meanings:

``site_records``: one row per site record, ``seq`` = its place in the site chain
(append order), the other columns as in ``records``. ``accounts``: ``roles`` a JSON
list, ``status`` active | locked | disabled, ``failures`` consecutive failed sign-ins,
``source_seq``/``source_hash`` the last site record that set the row. ``credentials``:
the argon2 strings (newest N kept). ``training``: ``version`` '' = every version, ISO
dates. ``tasks``: ``phase`` perform | verify, ``status`` open | answered | closed |
expired | withdrawn, ``summary`` JSON. ``run_requests``: ``status`` pending | applied |
refused | expired. Every projection is derived from the site chain, never its authority."""

_SITE_STATEMENTS = tuple(s.strip() for s in CREATE_SITE.split(";") if s.strip())


def upgrade(conn: sqlite3.Connection) -> None:
    """Bring the file to :data:`SCHEMA_VERSION` inside the caller's write transaction.

    Creates ``run_owners`` (version 3) and every version 4 table that is missing, and
    sets ``meta.schema_version``; a file already at version 4 is not changed.
    """
    if not conn.in_transaction:
        raise RuntimeError("schema upgrade outside a write transaction")  # a caller's bug
    version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if version is not None and version[0] == str(SCHEMA_VERSION):
        return
    conn.execute(CREATE_OWNERS)
    for statement in _SITE_STATEMENTS:
        conn.execute(statement)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))


def is_missing_table(exc: sqlite3.OperationalError) -> bool:
    """Whether ``exc`` says a table does not exist (a file of an older version)."""
    return "no such table" in str(exc)
