"""Build the batch record of one run: a :class:`~cellauto.review.report.model.BatchRecord`
read from the run's records, its review records on the site chain (deviations, QC results,
the disposition with its certificate of analysis) through :mod:`cellauto.review.read`,
and the verification of the run, the ledger and the site chain.

Nothing here renders and nothing writes: the same records and the same ``generated_at``
give the same tree (and so byte-identical HTML and PDF).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import orjson

from cellauto.errors import JournalError
from cellauto.records import payloads as rec
from cellauto.records.backend import Conn
from cellauto.records.journal import Journal
from cellauto.records.ledger_check import check_ledger
from cellauto.records.material_payloads import (
    LabelPrinted,
    MaterialConsumed,
    MaterialUseVoided,
)
from cellauto.records.models import Record, utc_from_epoch_ns
from cellauto.records.site_payloads import Signature
from cellauto.records.site_payloads_review import BatchDisposed
from cellauto.records.site_verify import verify_site
from cellauto.records.verify import verify_run
from cellauto.records.wording import describe
from cellauto.review.read import (
    confirm_run_review,
    read_deviations,
    read_disposition,
    read_qc_results,
    read_release_plan,
    review_records,
)
from cellauto.review.report import review_text
from cellauto.review.report.exceptions import review_items
from cellauto.review.report.model import (
    BatchRecord,
    Correction,
    DeviationEntry,
    Disposition,
    Header,
    PlanTest,
    QcEntry,
    ReviewRecordRow,
    Verification,
)
from cellauto.review.report.series import build_series
from cellauto.review.report.steps import appendix_rows, equipment_rows, material_rows, steps_of
from cellauto.site._chain import StoredSiteRecord, stored_site_record, stored_site_records_where
from cellauto.site.alarms import open_alarms
from cellauto.site.replay import replay_problem

__all__ = ["build_batch_record"]


def _header(
    records: Sequence[Record],
    s: rec.RunStarted,
    product: str | None,
    disposition: Disposition | None,
    generated_at: datetime,
    journal: Journal,
) -> Header:
    started = records[0]
    ended = next((r for r in reversed(records) if isinstance(r.payload, rec.RunEnded)), None)
    e = ended.payload if ended is not None and isinstance(ended.payload, rec.RunEnded) else None
    label = next((r.payload for r in records if isinstance(r.payload, LabelPrinted)), None)
    product = product or (label.text.product if label is not None else None)
    params = s.parameters
    if disposition is None:
        decided = "not dispositioned"
    else:
        on = f"{disposition.decided_at:%Y-%m-%d %H:%M} UTC"
        decided = f"{disposition.decision} by {disposition.by} on {on}"
    return Header(
        product=product or s.protocol_name,
        din=str(params["din"]) if "din" in params else None,
        coi=str(params["coi"]) if "coi" in params else None,
        run_id=s.run_id,
        protocol=s.protocol_name,
        protocol_version=s.protocol_version,
        protocol_sha256=s.protocol_source_sha256,
        started_utc=started.process_time,
        ended_utc=ended.process_time if ended is not None else None,
        final_state=e.final_state if e else None,
        exit_status=e.exit_status if e else None,
        simulated=s.simulated,
        disposition=decided,
        generated_at=generated_at,
        journal=journal.location.name,
    )


def _site_signatures(conn: Conn, seqs: Sequence[int]) -> dict[int, list[Signature]]:
    """The signature site records that sign the site records at ``seqs``."""
    found: dict[int, list[Signature]] = {}
    if not seqs:
        return found
    marks = ", ".join("?" * len(seqs))
    where = (
        "kind = 'signature' AND json_extract(body, '$.payload.signed.chain') = 'site'"
        f" AND CAST(json_extract(body, '$.payload.signed.seq') AS INTEGER) IN ({marks})"
    )
    for record in stored_site_records_where(conn, where, list(seqs)):
        p = record.payload
        if isinstance(p, Signature):
            found.setdefault(p.signed.seq, []).append(p)
    return found


def _deviations(
    conn: Conn, run_id: str, reviewed: Sequence[StoredSiteRecord]
) -> list[DeviationEntry]:
    times = dict(
        conn.execute(
            "SELECT seq, process_time_s FROM records WHERE run_id = ? AND kind = 'deviation'",
            (run_id,),
        ).fetchall()
    )
    history: dict[str, list[str]] = {}
    for r in reviewed:
        deviation_id = getattr(r.payload, "deviation_id", None)
        if isinstance(deviation_id, str):
            history.setdefault(deviation_id, []).append(f"s{r.seq}")
    return [
        DeviationEntry(
            deviation_id=d.deviation_id,
            origin=d.origin,
            step=d.step,
            title=d.title,
            status=d.status,
            classification=d.classification,
            product_impact=d.product_impact,
            capa=d.capa,
            opened_utc=None if d.opened_wall_ns is None else utc_from_epoch_ns(d.opened_wall_ns),
            closed_utc=None if d.closed_wall_ns is None else utc_from_epoch_ns(d.closed_wall_ns),
            process_time_s=times.get(d.run_seq) if d.run_seq is not None else None,
            run_anchor=None if d.run_seq is None else f"r{d.run_seq}",
            history=history.get(d.deviation_id, []),
        )
        for d in read_deviations(conn, run_id=run_id)
    ]


def _qc(conn: Conn, run_id: str) -> list[QcEntry]:
    return [
        QcEntry(
            result_id=q.result_id,
            test=q.test,
            source=q.source,
            result=q.text if q.text is not None else f"{q.value:g}" if q.value is not None else "",
            unit=q.unit,
            verdict=q.verdict,
            status=q.status,
            entered_by=q.entered_by,
            verified_by=q.verified_by,
            anchor=f"s{q.source_seq}",
        )
        for q in read_qc_results(conn, run_id)
    ]


def _plan(conn: Conn, run_id: str) -> tuple[list[PlanTest] | None, str | None]:
    plan = read_release_plan(conn, run_id)
    if plan is None:
        return None, None
    tests = [
        PlanTest(
            name=t.name,
            specification=t.spec.describe() + (f" ({t.method})" if t.method else ""),
            required=t.required,
        )
        for t in plan.tests
    ]
    return tests, plan.product


def _disposition(conn: Conn, run_id: str) -> Disposition | None:
    row = read_disposition(conn, run_id)
    if row is None:
        return None
    record = stored_site_record(conn, row.source_seq)
    payload = record.payload if record is not None else None
    coa = payload.coa if isinstance(payload, BatchDisposed) else None
    return Disposition(
        decision=row.decision,
        by=row.by_name,
        decided_at=utc_from_epoch_ns(row.decided_wall_ns),
        anchor=f"s{row.source_seq}",
        coa=coa,
        coa_sha256=row.coa_sha256,
    )


def _review_rows(
    reviewed: Sequence[StoredSiteRecord], signatures: dict[int, list[Signature]]
) -> list[ReviewRecordRow]:
    return [
        ReviewRecordRow(
            anchor=f"s{r.seq}",
            when_utc=utc_from_epoch_ns(r.wall_time_ns),
            kind=r.kind.value,
            by=r.payload.by,
            text=review_text.describe_review(r.payload),
            signatures=[review_text.signature_line(s) for s in signatures.get(r.seq, [])],
        )
        for r in reviewed
    ]


def _corrections(
    conn: Conn, records: Sequence[Record], reviewed: Sequence[StoredSiteRecord]
) -> list[Correction]:
    found: list[Correction] = []
    used_lots: set[str] = set()
    for r in records:
        p = r.payload
        if isinstance(p, MaterialConsumed):
            used_lots.add(p.lot.lot_id)
        if isinstance(p, rec.TaskRejected | MaterialUseVoided):
            found.append(
                Correction(
                    anchor=f"r{r.seq}",
                    when_utc=r.process_time,
                    kind=r.kind.value,
                    text=describe(r) or "",
                )
            )
    for s in reviewed:
        text = review_text.correction_text(s.payload)
        if text is not None:
            found.append(
                Correction(
                    anchor=f"s{s.seq}",
                    when_utc=utc_from_epoch_ns(s.wall_time_ns),
                    kind=s.kind.value,
                    text=text,
                )
            )
    found.extend(review_text.lot_adjustments(conn, sorted(used_lots)))
    return found


def _verification(journal: Journal, conn: Conn, run_id: str) -> Verification:
    ledger = check_ledger(conn)
    run = verify_run(journal, run_id, ledger=ledger)
    site = verify_site(conn, ledger, site_replay=replay_problem)
    try:
        confirm_run_review(conn, run_id)
        review_problem = None
    except JournalError as exc:
        review_problem = str(exc)
    run_problem = None
    if not run.intact:
        run_problem = f"record {run.first_broken_seq}: {run.reason}"
    elif not run.sealed:
        run_problem = "the run neither ended nor was sealed"
    return Verification(
        run_intact=run.intact,
        run_records=run.records,
        run_head_hash=run.head_hash,
        run_sealed=run.sealed,
        run_anchored_seq=run.anchored_seq,
        run_problem=run_problem,
        site_intact=site.intact,
        site_records=site.records,
        site_head_hash=site.head_hash,
        site_problem=None if site.intact else site.describe(),
        review_problem=review_problem,
    )


def _parameters(records: Sequence[Record]) -> list[tuple[str, str]]:
    for r in records:
        if isinstance(r.payload, rec.RunStarted):
            return [
                (name, value if isinstance(value, str) else orjson.dumps(value).decode())
                for name, value in sorted(r.payload.parameters.items())
            ]
    return []


def build_batch_record(journal: Journal, run_id: str, *, generated_at: datetime) -> BatchRecord:
    """The batch record of ``run_id`` (an exact id) as of ``generated_at``."""
    records = journal.records(run_id)
    started = records[0].payload if records else None
    if not isinstance(started, rec.RunStarted):
        raise JournalError(f"run {run_id} has no run_started record; run cellauto verify")
    conn = journal.read_connection()
    verification = _verification(journal, conn, run_id)
    reviewed = review_records(conn, run_id)
    signatures = _site_signatures(conn, [r.seq for r in reviewed])
    deviations = _deviations(conn, run_id, reviewed)
    qc = _qc(conn, run_id)
    plan, product = _plan(conn, run_id)
    disposition = _disposition(conn, run_id)
    corrections = _corrections(conn, records, reviewed)
    review = review_items(
        records,
        deviations=deviations,
        qc=qc,
        plan=plan,
        corrections=corrections,
        verification=verification,
        alarm_acks={
            alarm.seq: f"{alarm.acked_by}: {alarm.comment}"
            for alarm in open_alarms(conn, run_id=run_id, include_acknowledged=True)
            if alarm.acked_by
        },
    )
    steps, shown = steps_of(records)
    referenced = {item.anchor for item in review}
    return BatchRecord(
        header=_header(records, started, product, disposition, generated_at, journal),
        review=review,
        disposition=disposition,
        deviations=deviations,
        plan=plan,
        qc=qc,
        series=build_series(records),
        steps=steps,
        parameters=_parameters(records),
        materials=material_rows(records),
        equipment=equipment_rows(records),
        corrections=corrections,
        review_records=_review_rows(reviewed, signatures),
        verification=verification,
        appendix=appendix_rows(records, shown=shown, keep=referenced),
    )
