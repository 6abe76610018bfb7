"""Test helpers: a site chain in an empty journal, written without a store."""

from __future__ import annotations

import getpass
import os
import socket

from cellauto.records.backend import Conn, Location
from cellauto.records.canonical import record_body, record_hash
from cellauto.records.refs import SiteRef
from cellauto.records.site_payloads import Argon2Params, SitePayload, SitePolicy, Terminal
from cellauto.records.site_store import SiteStore
from cellauto.site.projection import apply_projection
from cellauto.testing import raw_connection

CHEAP = Argon2Params(time_cost=1, memory_kib=8, parallelism=1)
"""argon2 parameters that cost well under a millisecond: for tests only."""
POLICY = SitePolicy(argon2=CHEAP)
TERMINAL = Terminal(host=socket.gethostname(), pid=os.getpid(), os_user=getpass.getuser())
GENESIS = "0" * 64
DAY_NS = 86_400 * 10**9
T0_NS = 1_767_225_600 * 10**9
"""2026-01-01 00:00 UTC."""


def site_db(location: Location) -> Conn:
    """An empty journal at ``location`` (its site tables empty) and a plain connection to
    it (autocommit; the caller closes it), for :func:`append` to write without a store."""
    with SiteStore(location, create=True):
        pass
    return raw_connection(location)


def append(conn: Conn, payload: SitePayload, wall_time_ns: int = T0_NS) -> SiteRef:
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
