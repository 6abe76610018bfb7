"""The review projections: rows of ``deviations``, ``qc_results``, ``qc_imports``,
``lims_schemas`` and ``dispositions``, set by their site records alone.

:func:`apply_review_projection` runs inside the appending site transaction (through
:func:`cellauto.site.projection.apply_projection`) and again when ``verify`` replays the
site chain, so the stored rows and the replayed rows must agree
(:func:`review_problem`). It applies a record, it does not judge it: whether a transition
was allowed is the act's refusal to make and ``verify``'s to recheck.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from cellauto.errors import JournalError
from cellauto.records._schema import is_missing_table
from cellauto.records.backend import Conn
from cellauto.records.canonical import canonical_bytes
from cellauto.records.refs import SiteRef
from cellauto.records.site_payload_base import SitePayload
from cellauto.records.site_payloads_review import (
    BatchDisposed,
    DeviationClassified,
    DeviationClosed,
    DeviationInvestigated,
    DeviationRaised,
    DeviationWithdrawn,
    LimsSchemaDefined,
    QcResultBody,
    QcResultEntered,
    QcResultInvalidated,
    QcResultsImported,
    QcResultVerified,
)

__all__ = ["REVIEW_TABLES", "apply_review_projection", "review_problem"]

REVIEW_TABLES: dict[str, str] = {
    "deviations": "deviation_id",
    "qc_results": "result_id",
    "qc_imports": "run_id || ' ' || file_sha256",
    "lims_schemas": "name || ' v' || version",
    "dispositions": "run_id",
}
"""Each review table and the expression naming its row (for the replay's comparison)."""


def _canonical(value: object) -> str:
    """JSON with sorted keys: the same row whether the model came from the act's input
    (keys in the order given) or from the stored record (keys sorted)."""
    return canonical_bytes(value).decode()


def _observed(value: float | str) -> str:
    return orjson.dumps(value).decode()


def _insert(conn: Conn, sql: str, args: Sequence[object], what: str) -> None:
    try:
        conn.execute(sql, args)
    except sqlite3.IntegrityError as exc:
        raise JournalError(f"{what}, which exists") from exc


def _update(conn: Conn, sql: str, args: Sequence[object], what: str) -> None:
    if conn.execute(sql, args).rowcount != 1:
        raise JournalError(f"{what}, which was never recorded")


def _result_row(
    conn: Conn,
    run_id: str,
    body: QcResultBody,
    observed: float | str,
    verdict: str,
    source: str,
    by: str,
    ref: SiteRef,
) -> None:
    _insert(
        conn,
        "INSERT INTO qc_results (result_id, run_id, test, source, value, text, unit, observed,"
        " verdict, status, entered_by, entry_seq, verified_by, verified_seq, source_seq,"
        " source_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'valid', ?, ?, NULL, NULL, ?, ?)",
        (
            body.result_id,
            run_id,
            body.test,
            source,
            body.value,
            body.text,
            body.unit,
            _observed(observed),
            verdict,
            by,
            ref.seq,
            ref.seq,
            ref.hash,
        ),
        f"site record {ref.seq} records QC result {body.result_id}",
    )


def _apply_deviation(conn: Conn, payload: SitePayload, ref: SiteRef, wall_time_ns: int) -> bool:
    what = f"site record {ref.seq} acts on deviation"
    if isinstance(payload, DeviationRaised):
        _insert(
            conn,
            "INSERT INTO deviations (deviation_id, run_id, origin, run_seq, run_hash, step,"
            " title, status, classification, product_impact, capa, investigated_by,"
            " opened_wall_ns, closed_wall_ns, source_seq, source_hash)"
            " VALUES (?, ?, ?, NULL, NULL, ?, ?, 'open', NULL, NULL, NULL, NULL, ?, NULL, ?, ?)",
            (
                payload.deviation_id,
                payload.run_id,
                payload.origin,
                payload.step,
                payload.title,
                wall_time_ns,
                ref.seq,
                ref.hash,
            ),
            f"site record {ref.seq} raises deviation {payload.deviation_id}",
        )
    elif isinstance(payload, DeviationClassified):
        run_record = payload.run_record
        if run_record is not None:  # the first act on a deviation the runner recorded
            _insert(
                conn,
                "INSERT INTO deviations (deviation_id, run_id, origin, run_seq, run_hash,"
                " status, opened_wall_ns, source_seq, source_hash)"
                " VALUES (?, ?, 'runner', ?, ?, 'open', NULL, ?, ?)",
                (
                    payload.deviation_id,
                    payload.run_id,
                    run_record.seq,
                    run_record.hash,
                    ref.seq,
                    ref.hash,
                ),
                f"site record {ref.seq} creates the row of deviation {payload.deviation_id}",
            )
        _update(
            conn,
            "UPDATE deviations SET classification = ?, status = CASE status"
            " WHEN 'investigated' THEN 'investigated' ELSE 'classified' END,"
            " source_seq = ?, source_hash = ? WHERE deviation_id = ?",
            (payload.classification.value, ref.seq, ref.hash, payload.deviation_id),
            f"{what} {payload.deviation_id}",
        )
    elif isinstance(payload, DeviationInvestigated):
        _update(
            conn,
            "UPDATE deviations SET status = 'investigated', product_impact = ?,"
            " investigated_by = ?, source_seq = ?, source_hash = ? WHERE deviation_id = ?",
            (payload.product_impact.value, payload.by, ref.seq, ref.hash, payload.deviation_id),
            f"{what} {payload.deviation_id}",
        )
    elif isinstance(payload, DeviationClosed | DeviationWithdrawn):
        closed = isinstance(payload, DeviationClosed)
        _update(
            conn,
            "UPDATE deviations SET status = ?, capa = ?, closed_wall_ns = ?,"
            " source_seq = ?, source_hash = ? WHERE deviation_id = ?",
            (
                "closed" if closed else "withdrawn",
                payload.capa if isinstance(payload, DeviationClosed) else None,
                wall_time_ns,
                ref.seq,
                ref.hash,
                payload.deviation_id,
            ),
            f"{what} {payload.deviation_id}",
        )
    else:
        return False
    return True


def _apply_qc(conn: Conn, payload: SitePayload, ref: SiteRef) -> bool:
    if isinstance(payload, QcResultEntered):
        _result_row(
            conn,
            payload.run_id,
            payload.result,
            payload.observed,
            payload.verdict,
            "manual",
            payload.by,
            ref,
        )
    elif isinstance(payload, QcResultsImported):
        _insert(
            conn,
            "INSERT INTO qc_imports (run_id, file_sha256, source_seq) VALUES (?, ?, ?)",
            (payload.run_id, payload.file_sha256, ref.seq),
            f"site record {ref.seq} imports {payload.file_name} for run {payload.run_id}",
        )
        for body, observed, verdict in zip(
            payload.results, payload.observed, payload.verdicts, strict=True
        ):
            _result_row(conn, payload.run_id, body, observed, verdict, "lims", payload.by, ref)
    elif isinstance(payload, QcResultVerified):
        _update(
            conn,
            "UPDATE qc_results SET verified_by = ?, verified_seq = ?, source_seq = ?,"
            " source_hash = ? WHERE result_id = ? AND entry_seq = ?",
            (payload.by, ref.seq, ref.seq, ref.hash, payload.result_id, payload.entry.seq),
            f"site record {ref.seq} verifies QC result {payload.result_id}",
        )
    elif isinstance(payload, QcResultInvalidated):
        _update(
            conn,
            "UPDATE qc_results SET status = 'invalidated', source_seq = ?, source_hash = ?"
            " WHERE result_id = ?",
            (ref.seq, ref.hash, payload.result_id),
            f"site record {ref.seq} invalidates QC result {payload.result_id}",
        )
    elif isinstance(payload, LimsSchemaDefined):
        _insert(
            conn,
            "INSERT INTO lims_schemas (name, version, body, source_seq, source_hash)"
            " VALUES (?, ?, ?, ?, ?)",
            (
                payload.name,
                payload.version,
                _canonical(payload.lims.model_dump(mode="json")),
                ref.seq,
                ref.hash,
            ),
            f"site record {ref.seq} defines LIMS schema {payload.name} v{payload.version}",
        )
    else:
        return False
    return True


def apply_review_projection(
    conn: Conn, payload: SitePayload, ref: SiteRef, wall_time_ns: int
) -> None:
    """Update the review projections for one site record (no-op for other kinds)."""
    if _apply_deviation(conn, payload, ref, wall_time_ns) or _apply_qc(conn, payload, ref):
        return
    if isinstance(payload, BatchDisposed):
        _insert(
            conn,
            "INSERT INTO dispositions (run_id, decision, decided_wall_ns, by_name, coa_sha256,"
            " source_seq, source_hash) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                payload.run_id,
                payload.decision,
                wall_time_ns,
                payload.by,
                payload.coa_sha256,
                ref.seq,
                ref.hash,
            ),
            f"site record {ref.seq} disposes of batch {payload.run_id}",
        )


def _table(conn: Conn, table: str, key: str) -> tuple[list[str], dict[str, Any]]:
    try:
        cursor = conn.execute(f"SELECT {key} AS row_key, * FROM {table}")
    except sqlite3.OperationalError as exc:
        if is_missing_table(exc):
            return [], {}
        raise
    names = [d[0] for d in cursor.description][1:]
    return names, {row[0]: dict(zip(names, row[1:], strict=True)) for row in cursor}


def review_problem(conn: Conn, scratch: Conn) -> str | None:
    """The first difference between the stored review tables and the replay
    (``scratch``: the site chain replayed), or None when they agree."""
    for table, key in REVIEW_TABLES.items():
        _, have = _table(conn, table, key)
        names, want = _table(scratch, table, key)
        for name in sorted(set(have) | set(want)):
            stored, replayed = have.get(name), want.get(name)
            if replayed is None:
                return f"{table} table edited: row {name!r} is there but no site record set it"
            if stored is None:
                return (
                    f"{table} table edited: row {name!r} is missing but site record"
                    f" {replayed['source_seq']} says it exists"
                )
            for column in names:
                if stored.get(column) != replayed[column]:
                    return (
                        f"{table} table edited: row {name!r} {column} {stored.get(column)!r}"
                        f" but site record {replayed['source_seq']} says {replayed[column]!r}"
                    )
    return None
