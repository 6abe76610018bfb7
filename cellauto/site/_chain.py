"""Reading site records straight from ``site_records``, each checked against its hash.

The projections (``accounts``, ``training``, the site policy) are indexes; whatever they
grant is confirmed against the site record they name. These helpers read one record
or a selection, recompute ``sha256(body)`` and refuse a record whose stored body and
hash disagree, so a grant never rests on an edited record.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import orjson
from pydantic import ValidationError

from cellauto.errors import JournalError
from cellauto.records.backend import Conn
from cellauto.records.refs import SiteRef
from cellauto.records.site_payloads import SITE_PAYLOAD_TYPES, SiteKind, SitePayload

__all__ = [
    "VERIFY_HINT",
    "StoredSiteRecord",
    "rows_about",
    "stored_site_record",
    "stored_site_records",
]

VERIFY_HINT = "the journal may have been edited; run `cellauto verify` and call QA"


class StoredSiteRecord(NamedTuple):
    """A site record as stored, its payload parsed as its kind's model."""

    seq: int
    kind: SiteKind
    wall_time_ns: int
    payload: SitePayload
    hash: str

    @property
    def ref(self) -> SiteRef:
        return SiteRef(seq=self.seq, hash=self.hash)


_COLUMNS = "seq, kind, wall_time_ns, body, hash"


def _parse(row: tuple[int, str, int, str, str]) -> StoredSiteRecord:
    seq, kind_text, wall_time_ns, body, stored_hash = row
    if hashlib.sha256(body.encode("utf-8")).hexdigest() != stored_hash:
        raise JournalError(f"site record {seq} does not match its hash; {VERIFY_HINT}")
    try:
        kind = SiteKind(kind_text)
        parsed = orjson.loads(body)
        if parsed.get("seq") != seq or parsed.get("kind") != kind_text:
            raise ValueError("its body names another place or kind")
        payload = SITE_PAYLOAD_TYPES[kind].model_validate(parsed["payload"])
    except (ValueError, KeyError, TypeError, AttributeError, ValidationError) as exc:
        raise JournalError(f"site record {seq} cannot be read: {exc}; {VERIFY_HINT}") from exc
    return StoredSiteRecord(seq, kind, wall_time_ns, payload, stored_hash)


def stored_site_record(conn: Conn, seq: int) -> StoredSiteRecord | None:
    """The site record at ``seq`` (None when there is none), checked against its hash."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM site_records WHERE seq = ?", (seq,)).fetchone()
    return None if row is None else _parse(row)


def stored_site_records(
    conn: Conn,
    *,
    kinds: tuple[SiteKind, ...] | None = None,
    mentioning: str | None = None,
) -> Iterator[StoredSiteRecord]:
    """Site records in chain order, optionally of ``kinds`` only and only those whose
    body contains ``mentioning`` as a JSON string (a cheap pre-filter)."""
    where: list[str] = []
    args: list[object] = []
    if kinds is not None:
        where.append(f"kind IN ({', '.join('?' * len(kinds))})")
        args.extend(str(kind) for kind in kinds)
    if mentioning is not None:
        where.append("instr(body, ?) > 0")
        args.append(orjson.dumps(mentioning).decode("utf-8"))
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    sql = f"SELECT {_COLUMNS} FROM site_records{clause} ORDER BY seq"
    for row in conn.execute(sql, args):
        yield _parse(row)


def stored_site_records_where(
    conn: Conn, where: str, args: Sequence[object]
) -> Iterator[StoredSiteRecord]:
    """Site records in chain order matching ``where`` (SQL over ``site_records``, written
    by the caller from fixed text so that SQLite can use an index), parsed and checked."""
    sql = f"SELECT {_COLUMNS} FROM site_records WHERE {where} ORDER BY seq"
    for row in conn.execute(sql, tuple(args)):
        yield _parse(row)


def rows_about(conn: Conn, name: str) -> Iterator[tuple[str, Callable[[], StoredSiteRecord]]]:
    """In chain order, every ``policy_set`` record and every record whose body holds
    ``name`` as a JSON string: its kind, and a function that parses (and checks) it,
    so a caller may skip the parsing of records it does not need."""
    sql = (
        f"SELECT {_COLUMNS} FROM site_records WHERE kind = 'policy_set' OR instr(body, ?) > 0"
        " ORDER BY seq"
    )
    for row in conn.execute(sql, (orjson.dumps(name).decode("utf-8"),)):
        yield row[1], functools.partial(_parse, row)
