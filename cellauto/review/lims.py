"""LIMS exports: the declared schema (QA, signed ``approved``) and the import of one
file's results for a batch (QC, signed ``performed``).

``define_schema`` records a mapping as ``lims_schema_defined``, version one more than the
previous of its name. ``import_results`` reads the file through the newest version of
the schema it names (:func:`~cellauto.review.lims_parse.parse_export`), checks every row
of this batch as a hand entry is checked (:func:`~cellauto.review.qc_run.judge`), and
records them in one ``qc_results_imported`` (the file kept by name, size and SHA-256),
with one OOS deviation (signed) per failing result, all in one commit. Any problem
refuses the whole file, naming row and column, journaled as ``review_act_refused``; the
same file twice for a run, or a file without a row of the batch, is refused. Imported
results need no second-person verification: the LIMS authorised them and the interface
is validated through the signed schema. :func:`check_import` (``qc import --dry-run``)
checks everything and writes nothing at all: nobody signs in, a refusal is not journaled.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import NamedTuple

import orjson

from cellauto.errors import BadInputError, ReviewRefusedError
from cellauto.records.canonical import canonical_bytes
from cellauto.records.lims_schema import LimsSchema
from cellauto.records.refs import Meaning, SiteRef
from cellauto.records.site_payloads_review import (
    LimsSchemaDefined,
    QcResultBody,
    QcResultsImported,
    SampleIdentity,
    Verdict,
)
from cellauto.records.site_store import SiteStore, SiteTx
from cellauto.review._acting import ReviewActing, check_actor, payload, run_review_act, sign_act
from cellauto.review.ids import qc_result_id
from cellauto.review.lims_parse import (
    LimsExport,
    LimsFormatError,
    LimsRow,
    parse_export,
    read_export,
)
from cellauto.review.qc import Refuses, ended_run, open_oos_deviation
from cellauto.review.qc_eval import QcInputError
from cellauto.review.qc_run import Judged, RunFacts, judge
from cellauto.review.read import lims_schema
from cellauto.site._acts import today
from cellauto.site.auth import Authenticated
from cellauto.site.policy import current_policy
from cellauto.site.roles import Permission

__all__ = [
    "Defined",
    "ImportOutcome",
    "LimsFormatError",
    "check_import",
    "define_schema",
    "import_results",
    "parse_export",
]


class Defined(NamedTuple):
    ref: SiteRef
    signature: SiteRef
    version: int


class ImportOutcome(NamedTuple):
    """What an import recorded (``ref`` None for a dry run): its results with their
    verdicts, the rows of other batches it ignored, and the deviations it opened."""

    ref: SiteRef | None
    signature: SiteRef | None
    results: list[QcResultBody]
    observed: list[float | str]
    verdicts: list[Verdict]
    ignored_rows: int
    deviations: list[str]
    file_sha256: str


def define_schema(
    store: SiteStore, who: Authenticated, name: str, schema: LimsSchema, *, reason: str = ""
) -> Defined:
    """Record the LIMS schema ``name`` (the next version of it), signed ``approved``."""
    acting = ReviewActing(who, "qc schema define", name, None, reason)
    # as the record will read back (keys in canonical order), so the row replays equal
    schema = LimsSchema.model_validate(
        orjson.loads(canonical_bytes(schema.model_dump(mode="json")))
    )

    def body(tx: SiteTx) -> Defined:
        check_actor(tx, acting, Permission.QC_SCHEMA)
        (previous,) = tx.conn.execute(
            "SELECT max(version) FROM lims_schemas WHERE name = ?", (name,)
        ).fetchone()
        version = int(previous or 0) + 1
        record = payload(
            lambda: LimsSchemaDefined(
                by=who.account.name,
                terminal=who.terminal,
                reason=reason,
                name=name,
                version=version,
                lims=schema,
            ),
            f"LIMS schema {name!r}",
        )
        ref = tx.append(record)
        signature = sign_act(
            tx,
            acting,
            ref,
            record,
            Meaning.APPROVED,
            f"I approve LIMS schema {name} v{version} ({schema.format}, {len(schema.tests)} tests)",
            permission=Permission.QC_SCHEMA,
        )
        return Defined(ref, signature, version)

    return run_review_act(store, acting, body)


def _body(run_id: str, row: LimsRow, number: int) -> QcResultBody:
    return QcResultBody.model_construct(  # checked by judge(), validated with the record
        result_id=qc_result_id(run_id, row.test, number),
        test=row.test,
        sample=SampleIdentity(sample_id=row.sample_id[:64], coi=row.coi[:64], din=row.din),
        method=row.method,
        analyst=row.analyst,
        tested_on=row.tested_on,
        instrument=row.instrument,
        value=row.value,
        text=row.text,
        unit=row.unit,
        lims_row=row.row,
    )


_COLUMN_FIELD = {"value": "value", "unit": "unit", "coi": "coi", "din": "din"}


def _judge_rows(
    tx: SiteTx, acting: Refuses, facts: RunFacts, export: LimsExport, schema: LimsSchema
) -> list[Judged]:
    judged: list[Judged] = []
    day = today(tx)
    policy, _ = current_policy(tx.conn)
    for row in export.rows:
        (count,) = tx.conn.execute(
            "SELECT count(*) FROM qc_results WHERE run_id = ? AND test = ?",
            (facts.run_id, row.test),
        ).fetchone()
        (valid,) = tx.conn.execute(
            "SELECT count(*) FROM qc_results WHERE run_id = ? AND test = ? AND status = 'valid'",
            (facts.run_id, row.test),
        ).fetchone()
        column = schema.columns.test
        if valid:
            raise acting.refused(
                "retest_needs_invalidation",
                f"{export.name} row {row.row} column {column}: {row.test} already has a valid"
                " result; QA invalidates it before a retest is recorded; nothing was imported",
            )
        try:
            judged.append(judge(facts, _body(facts.run_id, row, int(count) + 1), day, policy))
        except QcInputError as exc:
            named = getattr(schema.columns, _COLUMN_FIELD.get(exc.column, exc.column), None)
            raise acting.refused(
                exc.cause,
                f"{export.name} row {row.row} column {named or exc.column}: {exc};"
                " nothing was imported",
            ) from None
    return judged


class _Checked(NamedTuple):
    facts: RunFacts
    export: LimsExport
    schema_ref: SiteRef
    judged: list[Judged]
    results: list[QcResultBody]


def _check(tx: SiteTx, acting: Refuses, run_id: str, path: Path, schema_name: str) -> _Checked:
    """Everything an import checks before it writes; refused through ``acting``."""
    try:
        data = read_export(path)
    except LimsFormatError as exc:
        raise acting.refused(exc.cause, str(exc)) from None
    found = lims_schema(tx.conn, schema_name)
    if found is None:
        raise acting.refused(
            "unknown_schema",
            f"no LIMS schema {schema_name!r}; `cellauto qc schema list` shows them",
        )
    _version, schema, schema_ref = found
    facts = ended_run(tx, acting, run_id)
    assert facts.plan is not None  # ended_run refuses a run without one
    try:
        export = parse_export(path, schema, coi=facts.plan.coi, plan=facts.plan, data=data)
    except LimsFormatError as exc:
        raise acting.refused(exc.cause, str(exc)) from None
    if not export.rows:
        raise acting.refused(
            "no_rows_for_batch",
            f"{export.name} has no row of batch {facts.plan.coi} ({export.ignored_rows}"
            " rows of other batches); nothing was imported",
        )
    if tx.conn.execute(
        "SELECT 1 FROM qc_imports WHERE run_id = ? AND file_sha256 = ?",
        (run_id, export.sha256),
    ).fetchone():
        raise acting.refused(
            "already_imported",
            f"{export.name} (sha256 {export.sha256[:12]}…) was already imported for run {run_id}",
        )
    judged = _judge_rows(tx, acting, facts, export, schema)
    return _Checked(facts, export, schema_ref, judged, [_validated(j) for j in judged])


class _DryRun:
    """A dry run's refusals: the error alone (nobody acts, nothing is journaled)."""

    def refused(self, cause: str, message: str) -> Exception:
        return ReviewRefusedError(message)


def check_import(store: SiteStore, run_id: str, path: Path, *, schema_name: str) -> ImportOutcome:
    """A dry run of :func:`import_results`: every check, on a read-only view of the file;
    nobody signs in and nothing at all is written (a refusal is raised, not journaled)."""
    with store.reading() as conn:
        checked = _check(_ReadOnlyTx(conn), _DryRun(), run_id, path, schema_name)  # type: ignore[arg-type]
    return ImportOutcome(
        None,
        None,
        checked.results,
        [j.observed for j in checked.judged],
        [j.verdict for j in checked.judged],
        checked.export.ignored_rows,
        [],
        checked.export.sha256,
    )


def import_results(
    store: SiteStore,
    who: Authenticated,
    run_id: str,
    path: Path,
    *,
    schema_name: str,
    reason: str = "",
) -> ImportOutcome:
    """Import the results of batch ``run_id`` from the LIMS export ``path`` (module doc)."""
    acting = ReviewActing(who, "qc import", f"{run_id} {path.name}"[:200], run_id, reason)

    def body(tx: SiteTx) -> ImportOutcome:
        check_actor(tx, acting, Permission.QC_ENTER)
        facts, export, schema_ref, judged, results = _check(tx, acting, run_id, path, schema_name)
        record = payload(
            lambda: QcResultsImported(
                by=who.account.name,
                terminal=who.terminal,
                reason=reason,
                run_id=run_id,
                file_name=export.name[:255],
                file_sha256=export.sha256,
                file_bytes=export.size,
                schema_name=schema_name,
                schema_ref=schema_ref,
                results=results,
                observed=[j.observed for j in judged],
                verdicts=[j.verdict for j in judged],
                ignored_rows=export.ignored_rows,
            ),
            "qc import",
        )
        ref = tx.append(record)
        signature = sign_act(
            tx,
            acting,
            ref,
            record,
            Meaning.PERFORMED,
            f"I import {len(results)} QC results for batch {facts.batch_din or run_id} from"
            f" {export.name} (sha256 {export.sha256[:12]}…)",
            permission=Permission.QC_ENTER,
        )
        deviations = [
            open_oos_deviation(tx, acting, run_id, j, body.result_id)[0]
            for j, body in zip(judged, results, strict=True)
            if j.verdict == "fail"
        ]
        return _outcome(ref, signature, record, deviations)

    return run_review_act(store, acting, body)


def _validated(judged: Judged) -> QcResultBody:
    return payload(lambda: QcResultBody.model_validate(judged.body.model_dump()), "qc import")


class _ReadOnlyTx:
    """What a dry run's checks read of a transaction (nothing may be appended)."""

    def __init__(self, conn: object) -> None:
        self.conn = conn
        self.wall_time_ns = time.time_ns()


def _outcome(
    ref: SiteRef | None, signature: SiteRef | None, record: QcResultsImported, dev: list[str]
) -> ImportOutcome:
    return ImportOutcome(
        ref,
        signature,
        record.results,
        record.observed,
        record.verdicts,
        record.ignored_rows,
        dev,
        record.file_sha256,
    )


def schema_of(data: bytes, *, source: str) -> LimsSchema:
    """A LIMS schema from its JSON file, or BadInputError naming what is wrong."""
    try:
        loaded = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BadInputError(f"{source} is not JSON: {exc}") from None
    return payload(lambda: LimsSchema.model_validate(loaded), f"LIMS schema {source}")
