"""Export one run's record: a CSV per record kind, and the full record as JSON.

``<kind>.csv`` columns: ``seq, kind, process_time, wall_time`` (ISO 8601, UTC,
microseconds), then the fields of that kind's payload model (sorted; a field that
clashes with a fixed column is written ``payload.<key>``), then, for kinds that carry
a verdict (checks), ``recomputed_passed`` and ``verdict_problem`` (the verdict
recomputed from the recorded value and spec, and why the stored flag disagrees with
it, if it does), then ``prev_hash, hash``. Strings are written as they are, None as
an empty cell, anything else (numbers, booleans, lists, objects) as compact JSON.

``run.json``: ``{"run_id", "records": [...], "chain": {...}}`` - every record with
all its fields (the body's fields, its hash, and the times as ISO 8601 strings;
checks also ``recomputed_passed`` and ``verdict_problem``) and the
:class:`~cellauto.records.verify.ChainReport`. From it alone a reader can
recompute each hash: the body is the record's ``run_id, seq, kind,
process_time_s, wall_time_ns, prev_hash, payload`` in the canonical form of
:mod:`cellauto.records.canonical`.

``signatures.csv`` (only for a run whose records embed electronic signatures, i.e.
operator tasks): one row per signature, ``run_seq, record_kind, task_id, signer,
printed_name, meaning, signed_at_local, time_zone, utc_offset, signed_at_utc, site_seq,
site_hash, simulated, confirmed``; the same rows are ``run.json["signatures"]``.
``confirmed`` is ``true`` when the signature's site record holds it and signs this
run's record, ``simulated`` for a simulated operator's in a simulated-operators run,
else ``false`` (:mod:`cellauto.records.signature_check`; ``cellauto verify`` says why).

``run.json["review"]`` (only once the batch has been reviewed): every site record of
review and release that names the run (deviations raised, classified, investigated,
closed; QC results entered, imported, verified, invalidated; QA's decision with its
certificate of analysis; refusals), each followed by the signatures of it, as
``{"seq", "kind", "wall_time", "hash", "payload"}`` in site-chain order.

Identical records give byte-identical files.
"""

from __future__ import annotations

import csv
import logging
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from cellauto.errors import BadInputError
from cellauto.records._schema import is_missing_table, site_row_filter
from cellauto.records.kinds import RecordKind
from cellauto.records.models import Record
from cellauto.records.payloads import CheckResult, IdentityCheck, Payload
from cellauto.records.signature_check import Confirmation, SignatureFinding, journal_signatures
from cellauto.records.verify import verify_run
from cellauto.records.wording import signatures_of, signed_at_local

if TYPE_CHECKING:
    from cellauto.records.journal import Journal

__all__ = ["export_run"]

_log = logging.getLogger(__name__)
_LEADING = ("seq", "kind", "process_time", "wall_time")
_TRAILING = ("prev_hash", "hash")
_FIXED = frozenset(_LEADING + _TRAILING)


def export_run(journal: Journal, run_id: str, out_dir: Path) -> list[Path]:
    """Write ``<kind>.csv`` for each kind present and ``run.json``; return their paths."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise BadInputError(
            f"--out {str(out_dir)!r} is a file, not a folder; name a new or existing folder"
        )
    report = verify_run(journal, run_id)
    if not report.intact:
        _log.warning("exporting run %s whose chain is broken: %s", run_id, report.reason)
    records = journal.records(run_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    by_kind: dict[RecordKind, list[Record]] = {}
    for record in records:
        by_kind.setdefault(record.kind, []).append(record)
    paths = [
        _write_csv(out_dir / f"{kind.value}.csv", by_kind[kind])
        for kind in RecordKind
        if kind in by_kind
    ]
    document: dict[str, Any] = {
        "run_id": run_id,
        "records": [_record_json(record) for record in records],
        "chain": report.model_dump(mode="json"),
    }
    signatures = _signature_rows(records, journal_signatures(journal, run_id))
    if signatures:
        paths.append(_write_signatures(out_dir / "signatures.csv", signatures))
        document["signatures"] = signatures
    review = _review_records(journal, run_id)
    if review:
        document["review"] = review
    json_path = out_dir / "run.json"
    json_path.write_bytes(
        orjson.dumps(document, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"
    )
    paths.append(json_path)
    return paths


SIGNATURE_COLUMNS = (
    "run_seq",
    "record_kind",
    "task_id",
    "signer",
    "printed_name",
    "meaning",
    "signed_at_local",
    "time_zone",
    "utc_offset",
    "signed_at_utc",
    "site_seq",
    "site_hash",
    "simulated",
    "confirmed",
)
"""The columns of ``signatures.csv`` (and the keys of ``run.json["signatures"]``)."""


def _review_records(journal: Journal, run_id: str) -> list[dict[str, Any]]:
    """The site records of the run's review and their signatures, in chain order."""
    conn = journal._read()
    try:
        rows = conn.execute(
            f"SELECT seq, kind, wall_time_ns, body, hash FROM site_records"
            f" WHERE {site_row_filter('run_review')} ORDER BY seq",
            (run_id,),
        ).fetchall()
    except sqlite3.OperationalError as exc:
        if is_missing_table(exc):
            return []
        raise
    if not rows:
        return []
    seqs = [row[0] for row in rows]
    marks = ", ".join("?" * len(seqs))
    rows += conn.execute(
        "SELECT seq, kind, wall_time_ns, body, hash FROM site_records WHERE kind = 'signature'"
        f" AND json_extract(body, '$.payload.signed.chain') = 'site'"
        f" AND CAST(json_extract(body, '$.payload.signed.seq') AS INTEGER) IN ({marks})",
        seqs,
    ).fetchall()
    return [
        {
            "seq": seq,
            "kind": kind,
            "wall_time": datetime.fromtimestamp(wall_ns / 1e9, tz=UTC).isoformat(),
            "hash": hash_,
            "payload": orjson.loads(body)["payload"],
        }
        for seq, kind, wall_ns, body, hash_ in sorted(rows)
    ]


def _confirmed(finding: SignatureFinding | None) -> str:
    if finding is not None and finding.confirmation is Confirmation.SIMULATED:
        return "simulated"
    return "true" if finding is not None and finding.confirmed else "false"


def _signature_rows(
    records: list[Record], findings: list[SignatureFinding]
) -> list[dict[str, Any]]:
    verdicts = {(f.run_seq, f.position): f for f in findings}
    rows = []
    for record in records:
        for position, signature in enumerate(signatures_of(record.payload)):
            local, _ = signed_at_local(signature)
            rows.append(
                {
                    "run_seq": record.seq,
                    "record_kind": record.kind.value,
                    "task_id": getattr(record.payload, "task_id", None),
                    "signer": signature.signer,
                    "printed_name": signature.printed_name,
                    "meaning": signature.meaning.value,
                    "signed_at_local": local.isoformat(timespec="microseconds"),
                    "time_zone": signature.time_zone,
                    "utc_offset": signature.utc_offset,
                    "signed_at_utc": signature.signed_at.astimezone(UTC).isoformat(
                        timespec="microseconds"
                    ),
                    "site_seq": signature.site.seq if signature.site else None,
                    "site_hash": signature.site.hash if signature.site else None,
                    "simulated": signature.simulated,
                    "confirmed": _confirmed(verdicts.get((record.seq, position))),
                }
            )
    return rows


def _write_signatures(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(SIGNATURE_COLUMNS)
        for row in rows:
            writer.writerow([_cell(row[column]) for column in SIGNATURE_COLUMNS])
    return path


def _derived(payload: Payload) -> dict[str, Any]:
    """What a reader recomputes from the record (a check's verdict), by column."""
    if isinstance(payload, CheckResult | IdentityCheck):
        return {
            "recomputed_passed": payload.recomputed,
            "verdict_problem": payload.verdict_problem(),
        }
    return {}


def _record_json(record: Record) -> dict[str, Any]:
    data = record.model_dump(mode="json")
    data["process_time"] = record.process_time.isoformat(timespec="microseconds")
    data["wall_time"] = record.wall_time.isoformat(timespec="microseconds")
    data.update(_derived(record.payload))
    return data


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _write_csv(path: Path, records: list[Record]) -> Path:
    rows = [record.payload.model_dump(mode="json") for record in records]
    keys = sorted({key for row in rows for key in row})
    derived = [_derived(record.payload) for record in records]
    extra = list(derived[0]) if derived else []
    header = [
        *_LEADING,
        *(f"payload.{key}" if key in _FIXED else key for key in keys),
        *extra,
        *_TRAILING,
    ]
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for record, row, more in zip(records, rows, derived, strict=True):
            writer.writerow(
                [
                    record.seq,
                    record.kind.value,
                    record.process_time.isoformat(timespec="microseconds"),
                    record.wall_time.isoformat(timespec="microseconds"),
                    *(_cell(row.get(key)) for key in keys),
                    *(_cell(more.get(key)) for key in extra),
                    record.prev_hash,
                    record.hash,
                ]
            )
    return path
