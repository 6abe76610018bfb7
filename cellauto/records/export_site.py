"""Export the site audit trail: who changed which account, training, policy, when and why.

``site_<kind>.csv``, one per site record kind present: ``seq, kind, wall_time_utc,
wall_time_local`` (ISO 8601, microseconds; local in the site policy's time zone), ``by,
reason``, the ``terminal.*`` fields (host, pid, tty, os_user, remote_address), then the
payload's own fields flattened (``old.roles``, ``signed.seq``...; sorted), then
``prev_hash, hash``. Strings as they are, None as an empty cell, anything else as
compact JSON.

``site.json``: ``{"time_zone", "records": [...], "chain": {...}}`` - every record with
the same fields, unflattened, and the verdict on the site chain
(:func:`~cellauto.records.site_verify.verify_site` without the projection replay, which
``cellauto verify`` adds).

Password material never leaves the journal: the commitments to password hashes
(``password_commitment``, ``commitment``) are left out, as the ``credentials`` table is
(it is not exported at all).

Identical site chains give byte-identical files.
"""

from __future__ import annotations

import csv
import logging
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from cellauto.errors import BadInputError, JournalError
from cellauto.records import backend as db
from cellauto.records.backend import Conn
from cellauto.records.ledger_check import check_ledger
from cellauto.records.site_chain import SiteRecord, parse_row, site_rows
from cellauto.records.site_payloads import SiteKind, SitePolicy
from cellauto.records.site_verify import SiteReport, verify_site

if TYPE_CHECKING:
    from cellauto.records.journal import Journal

__all__ = ["SECRET_FIELDS", "export_site"]

_log = logging.getLogger(__name__)

SECRET_FIELDS = frozenset({"password_commitment", "commitment"})
"""Payload fields never exported: they commit to a password's hash."""

_LEADING = ("seq", "kind", "wall_time_utc", "wall_time_local", "by", "reason")
_TERMINAL = tuple(f"terminal.{key}" for key in ("host", "pid", "tty", "os_user", "remote_address"))
_TRAILING = ("prev_hash", "hash")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def export_site(journal: Journal, out_dir: Path) -> tuple[list[Path], SiteReport]:
    """Write ``site_<kind>.csv`` for each kind present and ``site.json``; return their paths
    and the verdict on the site chain (exported whatever it is)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise BadInputError(
            f"--out {str(out_dir)!r} is a file, not a folder; name a new or existing folder"
        )
    conn = journal._read()
    db.begin_read(conn)
    try:
        zone = _zone(conn)
        records, unreadable = _records(conn)
        report = verify_site(conn, check_ledger(conn, None))
    finally:
        conn.execute("COMMIT")
    if not report.intact:
        _log.warning("exporting a site chain that is broken: %s", report.describe())
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [_row(record, zone) for record in records]
    paths = []
    for kind in SiteKind:
        of_kind = [row for row, record in zip(rows, records, strict=True) if record.kind is kind]
        if of_kind:
            paths.append(_write_csv(out_dir / f"site_{kind.value}.csv", of_kind))
    document: dict[str, Any] = {
        "time_zone": zone.key,
        "records": [_record_json(record, zone) for record in records],
        "chain": report.model_dump(mode="json"),
    }
    if unreadable:
        document["unreadable"] = unreadable
    json_path = out_dir / "site.json"
    json_path.write_bytes(
        orjson.dumps(document, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"
    )
    paths.append(json_path)
    return paths, report


def _zone(conn: Conn) -> ZoneInfo:
    """The site policy's time zone (UTC without a policy, or one this machine lacks)."""
    try:
        found = conn.execute("SELECT value FROM meta WHERE key = 'site_policy'").fetchone()
        name = "UTC" if found is None else SitePolicy.model_validate_json(found[0]).time_zone
        return ZoneInfo(name)
    except (sqlite3.OperationalError, ValueError, ZoneInfoNotFoundError):
        return ZoneInfo("UTC")


def _records(conn: Conn) -> tuple[list[SiteRecord], list[dict[str, Any]]]:
    records, unreadable = [], []
    for row in site_rows(conn):
        try:
            records.append(parse_row(row))
        except JournalError as exc:
            unreadable.append({"seq": row.seq, "kind": row.kind, "problem": str(exc)})
    return records, unreadable


def _times(record: SiteRecord, zone: ZoneInfo) -> tuple[str, str]:
    moment = _EPOCH + timedelta(microseconds=record.wall_time_ns // 1000)
    return (
        moment.isoformat(timespec="microseconds"),
        moment.astimezone(zone).isoformat(timespec="microseconds"),
    )


def _payload(record: SiteRecord) -> dict[str, Any]:
    data = record.payload.model_dump(mode="json")
    return {key: value for key, value in data.items() if key not in SECRET_FIELDS}


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _row(record: SiteRecord, zone: ZoneInfo) -> dict[str, Any]:
    utc, local = _times(record, zone)
    row = {"seq": record.seq, "kind": record.kind.value, "wall_time_utc": utc}
    row["wall_time_local"] = local
    row.update(_flat(_payload(record)))
    row["prev_hash"], row["hash"] = record.prev_hash, record.hash
    return row


def _record_json(record: SiteRecord, zone: ZoneInfo) -> dict[str, Any]:
    utc, local = _times(record, zone)
    return {
        "seq": record.seq,
        "kind": record.kind.value,
        "wall_time_utc": utc,
        "wall_time_local": local,
        "payload": _payload(record),
        "prev_hash": record.prev_hash,
        "hash": record.hash,
    }


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    fixed = set(_LEADING + _TERMINAL + _TRAILING)
    fields = sorted({key for row in rows for key in row} - fixed)
    header = [*_LEADING, *_TERMINAL, *fields, *_TRAILING]
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in rows:
            writer.writerow([_cell(row.get(column)) for column in header])
    return path
