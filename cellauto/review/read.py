"""Reading a batch's review state: its deviations, QC results, disposition and release
plan, confirmed against the records before anything relies on them.

The review tables are indexes. :func:`confirm_run_review` replays the review site records
of one run (found through the ``run_review`` index) and compares the rows they make with
the stored rows of that run, so a status edited in the file is refused with
:class:`~cellauto.errors.JournalError`, never released on. A deviation the runner recorded
and nobody has acted on yet has no row: it is read from the run's ``deviation`` records
(the ``records_deviations`` index) as ``open``. A file of schema version 5 or older reads
as having no review rows.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, NamedTuple

import orjson

from cellauto.errors import JournalError
from cellauto.records import backend as db
from cellauto.records._schema import REVIEW_STATEMENTS, is_missing_table, site_row_filter
from cellauto.records.backend import Conn
from cellauto.records.canonical import canonical_bytes
from cellauto.records.lims_schema import LimsSchema
from cellauto.records.refs import SiteRef
from cellauto.records.release_plan import ReleasePlan
from cellauto.records.site_payloads_review import (
    DeviationInvestigated,
    QcResultBody,
    QcResultEntered,
    QcResultsImported,
)
from cellauto.review.ids import runner_deviation_id
from cellauto.site._chain import (
    VERIFY_HINT,
    StoredSiteRecord,
    stored_site_record,
    stored_site_records_where,
)
from cellauto.site.projection_review import apply_review_projection

__all__ = [
    "DeviationRow",
    "DispositionRow",
    "QcRow",
    "RunnerDeviation",
    "confirm_run_review",
    "deviation_investigators",
    "lims_schema",
    "qc_result_bodies",
    "read_deviation",
    "read_deviations",
    "read_disposition",
    "read_qc_results",
    "read_release_plan",
    "review_records",
    "runner_deviations",
]

TERMINAL_STATUSES = frozenset({"closed", "withdrawn"})


def _select(conn: Conn, sql: str, args: Sequence[Any] = ()) -> list[Any]:
    try:
        return conn.execute(sql, tuple(args)).fetchall()
    except sqlite3.OperationalError as exc:
        if is_missing_table(exc):
            return []
        raise


class RunnerDeviation(NamedTuple):
    """A ``deviation`` record of a run, with the id it is known by."""

    deviation_id: str
    run_id: str
    seq: int
    hash: str
    step: str | None
    check: str
    description: str
    policy: str
    value: float | None
    process_time_s: float
    wall_time_ns: int


def runner_deviations(conn: Conn, run_id: str | None = None) -> list[RunnerDeviation]:
    """The runs' ``deviation`` records (of one run, or of all), numbered per run."""
    where, args = (
        ("run_id = ? AND kind = 'deviation'", (run_id,))
        if run_id
        else (
            "kind = 'deviation'",
            (),
        )
    )
    rows = conn.execute(
        "SELECT run_id, seq, hash, body, process_time_s, wall_time_ns FROM records"
        f" WHERE {where} ORDER BY run_id, seq",
        args,
    ).fetchall()
    found: list[RunnerDeviation] = []
    ordinal: dict[str, int] = {}
    for rid, seq, hash_, body, process_time_s, wall_time_ns in rows:
        ordinal[rid] = ordinal.get(rid, 0) + 1
        payload = orjson.loads(body)["payload"]
        found.append(
            RunnerDeviation(
                deviation_id=runner_deviation_id(rid, ordinal[rid]),
                run_id=rid,
                seq=seq,
                hash=hash_,
                step=payload.get("step"),
                check=payload.get("check", ""),
                description=payload.get("description", ""),
                policy=payload.get("policy", ""),
                value=payload.get("value"),
                process_time_s=process_time_s,
                wall_time_ns=wall_time_ns,
            )
        )
    return found


class DeviationRow(NamedTuple):
    """A deviation as a reviewer sees it: its row, or (runner, not acted on) its record."""

    deviation_id: str
    run_id: str
    origin: str
    """runner | person | qc"""
    step: str | None
    title: str
    status: str
    """open | classified | investigated | closed | withdrawn"""
    classification: str | None
    product_impact: str | None
    capa: str | None
    investigated_by: str | None
    opened_wall_ns: int | None
    closed_wall_ns: int | None
    run_seq: int | None
    source_seq: int | None
    """The last site record that set the row; None while only the run record exists."""

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


_DEVIATION_COLUMNS = (
    "deviation_id, run_id, origin, step, title, status, classification, product_impact,"
    " capa, investigated_by, opened_wall_ns, closed_wall_ns, run_seq, source_seq"
)


def read_deviations(
    conn: Conn,
    *,
    run_id: str | None = None,
    open_only: bool = False,
    rows_from: Conn | None = None,
) -> list[DeviationRow]:
    """Every deviation (of one run, or of the site), runner ones first by run and place;
    ``rows_from``: where the ``deviations`` rows are read (a replay's scratch database;
    default ``conn``)."""
    where, args = ("WHERE run_id = ?", (run_id,)) if run_id else ("", ())
    table = conn if rows_from is None else rows_from
    rows = {
        row[0]: DeviationRow(*row)
        for row in _select(table, f"SELECT {_DEVIATION_COLUMNS} FROM deviations {where}", args)
    }
    merged: list[DeviationRow] = []
    for recorded in runner_deviations(conn, run_id):
        row = rows.pop(recorded.deviation_id, None)
        title = recorded.description[:120]
        if row is None:
            row = DeviationRow(
                recorded.deviation_id,
                recorded.run_id,
                "runner",
                recorded.step,
                title,
                "open",
                None,
                None,
                None,
                None,
                recorded.wall_time_ns,
                None,
                recorded.seq,
                None,
            )
        else:
            row = row._replace(
                step=recorded.step, title=title, opened_wall_ns=recorded.wall_time_ns
            )
        merged.append(row)
    merged.extend(sorted(rows.values(), key=lambda r: (r.run_id, r.deviation_id)))
    return [row for row in merged if not (open_only and row.terminal)]


def deviation_investigators(conn: Conn, deviation_id: str) -> set[str]:
    """Everyone who recorded an investigation of the deviation (its ``deviation_investigated``
    site records, found through the ``deviations`` row index, each checked by its hash)."""
    try:
        records = stored_site_records_where(conn, site_row_filter("deviations"), (deviation_id,))
        return {
            record.payload.by
            for record in records
            if isinstance(record.payload, DeviationInvestigated)
        }
    except sqlite3.OperationalError as exc:
        if is_missing_table(exc):
            return set()
        raise


def read_deviation(conn: Conn, deviation_id: str) -> DeviationRow | None:
    """One deviation, or None; its run's review rows confirmed first."""
    found = _select(
        conn, f"SELECT {_DEVIATION_COLUMNS} FROM deviations WHERE deviation_id = ?", (deviation_id,)
    )
    run_id = found[0][1] if found else None
    if run_id is None:
        from cellauto.review.ids import parse_deviation_id, run_for_key

        run_id = run_for_key(conn, parse_deviation_id(deviation_id).run_key)
        if run_id is None:
            return None
    confirm_run_review(conn, run_id)
    return next(
        (r for r in read_deviations(conn, run_id=run_id) if r.deviation_id == deviation_id), None
    )


class QcRow(NamedTuple):
    result_id: str
    run_id: str
    test: str
    source: str
    """manual | lims"""
    value: float | None
    text: str | None
    unit: str
    observed: float | str
    verdict: str
    status: str
    """valid | invalidated"""
    entered_by: str
    entry_seq: int
    verified_by: str | None
    verified_seq: int | None
    source_seq: int
    source_hash: str


def read_qc_results(conn: Conn, run_id: str, *, valid_only: bool = False) -> list[QcRow]:
    """The run's QC results in the order they were recorded."""
    rows = _select(
        conn,
        "SELECT result_id, run_id, test, source, value, text, unit, observed, verdict, status,"
        " entered_by, entry_seq, verified_by, verified_seq, source_seq, source_hash"
        " FROM qc_results WHERE run_id = ? ORDER BY entry_seq, result_id",
        (run_id,),
    )
    results = [QcRow._make((*row[:7], orjson.loads(row[7]), *row[8:])) for row in rows]
    return [r for r in results if r.status == "valid"] if valid_only else results


def qc_result_bodies(conn: Conn, run_id: str) -> dict[str, QcResultBody]:
    """Each QC result of the run as recorded (analyst, tested_on, sample, ...): its body
    in the entry or import record at its row's ``entry_seq``, that record checked
    against its hash; JournalError when the row names a record without it."""
    bodies: dict[str, QcResultBody] = {}
    records: dict[int, StoredSiteRecord | None] = {}
    for row in read_qc_results(conn, run_id):
        if row.entry_seq not in records:
            records[row.entry_seq] = stored_site_record(conn, row.entry_seq)
        record = records[row.entry_seq]
        recorded = getattr(record, "payload", None)
        if isinstance(recorded, QcResultEntered):
            found = [recorded.result]
        elif isinstance(recorded, QcResultsImported):
            found = list(recorded.results)
        else:
            found = []
        body = next((b for b in found if b.result_id == row.result_id), None)
        if body is None or getattr(recorded, "run_id", None) != run_id:
            raise JournalError(
                f"qc_results row {row.result_id!r} names site record {row.entry_seq}, which"
                f" does not record it; {VERIFY_HINT}"
            )
        bodies[row.result_id] = body
    return bodies


class DispositionRow(NamedTuple):
    run_id: str
    decision: str
    """released | rejected"""
    decided_wall_ns: int
    by_name: str
    coa_sha256: str
    source_seq: int
    source_hash: str

    @property
    def ref(self) -> SiteRef:
        return SiteRef(seq=self.source_seq, hash=self.source_hash)


def read_disposition(conn: Conn, run_id: str) -> DispositionRow | None:
    rows = _select(
        conn,
        "SELECT run_id, decision, decided_wall_ns, by_name, coa_sha256, source_seq, source_hash"
        " FROM dispositions WHERE run_id = ?",
        (run_id,),
    )
    return DispositionRow(*rows[0]) if rows else None


def read_release_plan(conn: Conn, run_id: str) -> ReleasePlan | None:
    """The run's ``release_plan`` record (None: a run from before release plans)."""
    row = conn.execute(
        "SELECT body FROM records WHERE run_id = ? AND kind = 'release_plan' ORDER BY seq LIMIT 1",
        (run_id,),
    ).fetchone()
    if row is None:
        return None
    return ReleasePlan.model_validate(orjson.loads(row[0])["payload"])


def lims_schema(conn: Conn, name: str) -> tuple[int, LimsSchema, SiteRef] | None:
    """The newest version of the LIMS schema ``name``: (version, schema, its record)."""
    rows = _select(
        conn,
        "SELECT version, body, source_seq, source_hash FROM lims_schemas WHERE name = ?"
        " ORDER BY version DESC LIMIT 1",
        (name,),
    )
    if not rows:
        return None
    version, body, seq, hash_ = rows[0]
    records = list(stored_site_records_where(conn, "seq = ?", (seq,)))
    if len(records) != 1 or records[0].hash != hash_:
        raise JournalError(f"lims_schemas row {name!r} v{version} is not its record; {VERIFY_HINT}")
    stored = LimsSchema.model_validate_json(body)
    recorded = getattr(records[0].payload, "lims", None)
    if recorded != stored:
        raise JournalError(f"lims_schemas row {name!r} v{version} was edited; {VERIFY_HINT}")
    return version, stored, SiteRef(seq=seq, hash=hash_)


def review_records(conn: Conn, run_id: str) -> list[StoredSiteRecord]:
    """Every review site record of the run, in chain order, each checked against its hash."""
    try:
        return list(stored_site_records_where(conn, site_row_filter("run_review"), (run_id,)))
    except sqlite3.OperationalError as exc:
        if is_missing_table(exc):
            return []
        raise


_RUN_TABLES = {
    "deviations": "deviation_id",
    "qc_results": "result_id",
    "qc_imports": "file_sha256",
    "dispositions": "run_id",
}


def _rows_of(conn: Conn, table: str, key: str, run_id: str) -> dict[str, str]:
    cursor = conn.execute(f"SELECT * FROM {table} WHERE run_id = ?", (run_id,))
    names = [d[0] for d in cursor.description]
    return {
        row[names.index(key)]: canonical_bytes(dict(zip(names, row, strict=True))).decode()
        for row in cursor
    }


def confirm_run_review(conn: Conn, run_id: str) -> None:
    """Replay the run's review records and compare with its stored rows; JournalError
    naming the first row that differs (nothing may rely on an edited row)."""
    if not db.has_table(conn, "deviations"):
        return  # a file of schema version 5 or older: no review rows to confirm
    records = review_records(conn, run_id)
    scratch = sqlite3.connect(":memory:", isolation_level=None)
    try:
        for statement in REVIEW_STATEMENTS:
            scratch.execute(statement)
        for record in records:
            apply_review_projection(scratch, record.payload, record.ref, record.wall_time_ns)
        for table, key in _RUN_TABLES.items():
            have = _rows_of(conn, table, key, run_id)
            want = _rows_of(scratch, table, key, run_id)
            if have != want:
                name = next(k for k in sorted(set(have) | set(want)) if have.get(k) != want.get(k))
                raise JournalError(
                    f"{table} row {name!r} of run {run_id} is not what its site records say;"
                    f" {VERIFY_HINT}"
                )
    finally:
        scratch.close()
