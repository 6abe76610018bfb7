"""Test helpers: a site chain in a bare SQLite file, written without a store."""

from __future__ import annotations

import getpass
import os
import socket
import sqlite3
from pathlib import Path

from cellauto.records.canonical import record_body, record_hash
from cellauto.records.refs import SiteRef
from cellauto.records.site_payloads import Argon2Params, SitePayload, SitePolicy, Terminal
from cellauto.site.projection import apply_projection

CHEAP = Argon2Params(time_cost=1, memory_kib=8, parallelism=1)
"""argon2 parameters that cost well under a millisecond: for tests only."""
POLICY = SitePolicy(argon2=CHEAP)
TERMINAL = Terminal(host=socket.gethostname(), pid=os.getpid(), os_user=getpass.getuser())
GENESIS = "0" * 64
DAY_NS = 86_400 * 10**9
T0_NS = 1_767_225_600 * 10**9
"""2026-01-01 00:00 UTC."""

_DDL = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE site_records (
    seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, process_time_s REAL NOT NULL,
    wall_time_ns INTEGER NOT NULL, body TEXT NOT NULL, prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE accounts (
    name TEXT PRIMARY KEY, full_name TEXT NOT NULL, roles TEXT NOT NULL,
    status TEXT NOT NULL, failures INTEGER NOT NULL,
    password_seq INTEGER, password_expires_ns INTEGER, must_change INTEGER NOT NULL,
    source_seq INTEGER NOT NULL, source_hash TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE credentials (
    name TEXT NOT NULL, set_seq INTEGER NOT NULL, argon2 TEXT NOT NULL,
    PRIMARY KEY (name, set_seq)
) WITHOUT ROWID;
CREATE TABLE training (
    trainee TEXT NOT NULL, subject_kind TEXT NOT NULL,
    subject TEXT NOT NULL, version TEXT NOT NULL,
    trained_on TEXT NOT NULL, expires_on TEXT,
    revoked INTEGER NOT NULL, source_seq INTEGER NOT NULL, source_hash TEXT NOT NULL,
    PRIMARY KEY (trainee, subject_kind, subject, version)
) WITHOUT ROWID;
"""


def site_db(path: Path) -> sqlite3.Connection:
    """A file with the v4 site tables (the design's §1.2 DDL) and nothing else."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(_DDL)
    return conn


def append(conn: sqlite3.Connection, payload: SitePayload, wall_time_ns: int = T0_NS) -> SiteRef:
    """Chain, insert and project one record, as the site store does."""
    row = conn.execute("SELECT seq, hash FROM site_records ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (0, GENESIS) if row is None else (row[0] + 1, row[1])
    kind = payload.kind.value
    time_s = wall_time_ns / 1e9
    body = record_body("site", seq, kind, time_s, wall_time_ns, prev, payload.__dict__)
    digest = record_hash(body)
    conn.execute(
        "INSERT INTO site_records VALUES (?, ?, ?, ?, ?, ?, ?)",
        (seq, kind, time_s, wall_time_ns, body.decode(), prev, digest),
    )
    ref = SiteRef(seq=seq, hash=digest)
    apply_projection(conn, payload, ref, wall_time_ns)
    return ref
