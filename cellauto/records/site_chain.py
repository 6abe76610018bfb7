"""The site chain: the site's own hash chain of records about people, in ``site_records``.

Accounts, passwords, training, sign-ins and signatures are *site records*
(:mod:`cellauto.records.site_payloads`). They are chained exactly as a run's records
are (:mod:`cellauto.records.canonical`): the body is
``record_body(run_id="site", seq, kind, process_time_s, wall_time_ns, prev_hash,
payload)``, ``process_time_s`` is the wall time in seconds (a site has no process clock)
unless a controller writes on its run's clock, and the hash covers the body.

Unlike a run, the site chain has many writers (the controller, every CLI face): a
record is numbered and chained *inside* the write transaction, after the head as stored
then (:func:`append_in_tx`), and every commit that adds site records writes one signed
``site_anchor`` ledger entry covering its last record, in the same transaction, so the
chain never has an unsigned tail.

Readers treat a journal without the table (schema version 2 or 3) as having no site
records; reading never writes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any, NamedTuple

import orjson
from pydantic import ValidationError

from cellauto.errors import JournalError
from cellauto.records._schema import is_missing_table
from cellauto.records._sqlite import StoredRow
from cellauto.records.backend import Conn
from cellauto.records.canonical import record_body, record_hash
from cellauto.records.kinds import GENESIS_HASH
from cellauto.records.ledger import LedgerEvent, LedgerKind
from cellauto.records.refs import SITE_CHAIN, SiteRef
from cellauto.records.site_payloads import SITE_PAYLOAD_TYPES, SiteKind, SitePayload

__all__ = [
    "INSERT_SITE_RECORD",
    "Projector",
    "SiteRecord",
    "StoredSiteRow",
    "append_in_tx",
    "next_wall_time_ns",
    "parse_row",
    "read_site_record",
    "read_site_records",
    "site_head",
    "site_rows",
]

INSERT_SITE_RECORD = (
    "INSERT INTO site_records (seq, kind, process_time_s, wall_time_ns, body, prev_hash, hash)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_COLUMNS = "seq, kind, process_time_s, wall_time_ns, body, prev_hash, hash"

Projector = Callable[[Conn, SitePayload, SiteRef, int], None]
"""``(conn, payload, its ref, wall_time_ns)``: updates the projection tables (accounts,
credentials, training, ...) for one appended site record, in the same transaction."""


StoredSiteRow = StoredRow
"""One row of ``site_records``, as stored (nothing checked): the columns of ``records``."""


class SiteRecord(NamedTuple):
    """A site record read back: its place, kind, time, payload model and hashes."""

    seq: int
    kind: SiteKind
    wall_time_ns: int
    payload: SitePayload
    prev_hash: str
    hash: str

    @property
    def ref(self) -> SiteRef:
        return SiteRef(seq=self.seq, hash=self.hash)


def _select(conn: Conn, query: str, args: Sequence[Any]) -> list[Any]:
    """Run a read of ``site_records``; a file without the table has no site records."""
    try:
        return conn.execute(query, args).fetchall()
    except sqlite3.OperationalError as exc:
        if is_missing_table(exc):
            return []
        raise


def site_head(conn: Conn) -> tuple[int, str]:
    """The last site record's (seq, hash); ``(-1, GENESIS_HASH)`` when there is none."""
    rows = _select(conn, "SELECT seq, hash FROM site_records ORDER BY seq DESC LIMIT 1", ())
    return (-1, GENESIS_HASH) if not rows else (int(rows[0][0]), str(rows[0][1]))


def _head_wall_ns(conn: Conn) -> int:
    rows = _select(conn, "SELECT wall_time_ns FROM site_records ORDER BY seq DESC LIMIT 1", ())
    return int(rows[0][0]) if rows else 0


def site_rows(conn: Conn, *, start_seq: int = 0) -> Iterator[StoredSiteRow]:
    """The stored rows from ``start_seq`` on, in seq order (nothing checked)."""
    try:
        cursor = conn.execute(
            f"SELECT {_COLUMNS} FROM site_records WHERE seq >= ? ORDER BY seq", (start_seq,)
        )
    except sqlite3.OperationalError as exc:
        if is_missing_table(exc):
            return
        raise
    for row in cursor:
        yield StoredSiteRow(*row)


def parse_row(row: StoredSiteRow) -> SiteRecord:
    """The record a stored row holds (its payload validated; the chain is not checked)."""
    try:
        kind = SiteKind(row.kind)
        payload = SITE_PAYLOAD_TYPES[kind].model_validate(orjson.loads(row.body)["payload"])
    except (orjson.JSONDecodeError, ValidationError, TypeError, KeyError, ValueError) as exc:
        raise JournalError(
            f"site record {row.seq} ({row.kind}) cannot be read: {exc}; run `cellauto verify` "
            "on the journal (its site chain was changed, or written by a newer cellauto)"
        ) from exc
    return SiteRecord(row.seq, kind, row.wall_time_ns, payload, row.prev_hash, row.hash)


def read_site_record(conn: Conn, seq: int) -> SiteRecord | None:
    """Site record ``seq``, parsed but not verified; None if there is none."""
    rows = _select(conn, f"SELECT {_COLUMNS} FROM site_records WHERE seq = ?", (seq,))
    return parse_row(StoredSiteRow(*rows[0])) if rows else None


def read_site_records(
    conn: Conn,
    *,
    start_seq: int = 0,
    kinds: Collection[SiteKind] | None = None,
) -> Iterator[SiteRecord]:
    """The site records from ``start_seq`` on (only those of ``kinds``), parsed, in order."""
    wanted = None if kinds is None else {SiteKind(kind).value for kind in kinds}
    for row in site_rows(conn, start_seq=start_seq):
        if wanted is None or row.kind in wanted:
            yield parse_row(row)


def append_in_tx(
    conn: Conn,
    payloads: Sequence[SitePayload],
    *,
    wall_time_ns: int,
    project: Projector | None,
    process_time_s: float | None = None,
) -> tuple[list[SiteRef], LedgerEvent]:
    """Append ``payloads`` to the site chain inside the caller's write transaction.

    Each is chained after the head *as stored now* (other processes append too),
    inserted, and projected (``project``) at once, so a later payload of the same
    transaction sees the projection of an earlier one. Returns their refs and the
    ``site_anchor`` ledger event covering the last; the caller writes that event in
    the same transaction (:class:`~cellauto.records.site_store.SiteStore` does).
    ``process_time_s``: the run's process time when a controller writes on its loop;
    by default the wall time in seconds.
    """
    if not conn.in_transaction:
        raise JournalError("site records are appended inside a write transaction (a bug)")
    if not payloads:
        raise JournalError("append_in_tx: no site records to append (a bug)")
    seq, prev = site_head(conn)
    time_s = wall_time_ns / 1e9 if process_time_s is None else process_time_s
    refs: list[SiteRef] = []
    for payload in payloads:
        if not isinstance(payload, SitePayload) or type(payload) is SitePayload:
            raise JournalError(
                "a site record is one of the payload models of "
                f"cellauto.records.site_payloads, not {type(payload).__name__}"
            )
        seq += 1
        kind = payload.kind.value
        body = record_body(SITE_CHAIN, seq, kind, time_s, wall_time_ns, prev, payload.__dict__)
        digest = record_hash(body)
        conn.execute(
            INSERT_SITE_RECORD, (seq, kind, time_s, wall_time_ns, body.decode(), prev, digest)
        )
        ref = SiteRef(seq=seq, hash=digest)
        if project is not None:
            project(conn, payload, ref, wall_time_ns)
        refs.append(ref)
        prev = digest
    return refs, LedgerEvent(LedgerKind.SITE_ANCHOR, SITE_CHAIN, seq, prev)


def next_wall_time_ns(conn: Conn, now_ns: int) -> int:
    """``now_ns``, or the head's wall time if the clock is behind it (never decreasing)."""
    return max(now_ns, _head_wall_ns(conn))
