"""The review and release site records in words, one line each, as the CLI and the batch
record show them (``DEVIATION RAISED DEV-3f9a1c2e7b10-S01 by op.ann: bag label smudged``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from cellauto.records.backend import Conn
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
    ReviewActRefused,
)
from cellauto.review.read import (
    read_deviations,
    read_disposition,
    read_qc_results,
    read_release_plan,
)

__all__ = ["describe_review", "review_summary"]


def _why(p: SitePayload) -> str:
    return f" (reason: {p.reason})" if p.reason else ""


def _raised(p: DeviationRaised) -> str:
    where = f" at step {p.step}" if p.step else ""
    source = f" (QC result {p.qc_result})" if p.qc_result else ""
    hold = "; Hold of the run requested" if p.hold_requested else ""
    observed = f", observed {p.observed_at.isoformat()}" if p.observed_at else ""
    return f"DEVIATION RAISED {p.deviation_id} by {p.by}{source}{where}{observed}: {p.title}{hold}"


def _classified(p: DeviationClassified) -> str:
    was = f" (was {p.previous.value})" if p.previous else ""
    others = f"; other batches: {', '.join(p.other_batches)}" if p.other_batches else ""
    record = f" (run record #{p.run_record.seq})" if p.run_record else ""
    return (
        f"DEVIATION CLASSIFIED {p.deviation_id}{record} {p.classification.value}{was} by"
        f" {p.by}: {p.impact_assessment}{others}{_why(p)}"
    )


def _investigated(p: DeviationInvestigated) -> str:
    evidence = f"; evidence: {', '.join(e.name for e in p.evidence)}" if p.evidence else ""
    return (
        f"DEVIATION INVESTIGATED {p.deviation_id} by {p.by}: root cause {p.category.value}"
        f" ({p.root_cause}); product impact {p.product_impact.value} ({p.impact_detail})"
        f"{evidence}{_why(p)}"
    )


def _closed(p: DeviationClosed) -> str:
    capa = (
        f"CAPA {p.capa}"
        if p.capa
        else f"no CAPA: {p.no_capa_reason}"
        if p.no_capa_reason
        else "no CAPA"
    )
    return f"DEVIATION CLOSED {p.deviation_id} by {p.by}, {capa}: {p.conclusion}{_why(p)}"


def _withdrawn(p: DeviationWithdrawn) -> str:
    return f"DEVIATION WITHDRAWN {p.deviation_id} by {p.by}: {p.cause}"


def _result(body: QcResultBody, observed: float | str, verdict: str) -> str:
    value = body.text if body.text is not None else f"{body.value:g}"
    unit = f" {body.unit}" if body.unit else ""
    shown = "" if str(observed) in (value, str(body.value)) else f" (as compared: {observed})"
    return f"{body.result_id} {body.test} = {value}{unit}{shown} {verdict.upper()}"


def _entered(p: QcResultEntered) -> str:
    return (
        f"QC RESULT ENTERED by {p.by}: {_result(p.result, p.observed, p.verdict)}"
        f" (sample {p.result.sample.sample_id}, {p.result.method}, {p.result.analyst},"
        f" {p.result.tested_on.isoformat()})"
    )


def _imported(p: QcResultsImported) -> str:
    fails = sum(verdict == "fail" for verdict in p.verdicts)
    ignored = f", {p.ignored_rows} rows of other batches ignored" if p.ignored_rows else ""
    return (
        f"QC RESULTS IMPORTED by {p.by} from {p.file_name} (sha256 {p.file_sha256[:12]}…,"
        f" schema {p.schema_name}): {len(p.results)} results, {fails} failing{ignored}"
    )


def _verified(p: QcResultVerified) -> str:
    return f"QC RESULT VERIFIED {p.result_id} by {p.by} (entry site #{p.entry.seq})"


def _invalidated(p: QcResultInvalidated) -> str:
    by_deviation = f" (deviation {p.deviation_id})" if p.deviation_id else ""
    return f"QC RESULT INVALIDATED {p.result_id} by {p.by}{by_deviation}: {p.cause}"


def _schema(p: LimsSchemaDefined) -> str:
    return f"LIMS SCHEMA DEFINED {p.name} v{p.version} by {p.by}{_why(p)}"


def _disposed(p: BatchDisposed) -> str:
    simulated = " (SIMULATION — NOT A PRODUCT)" if p.simulated else ""
    return (
        f"BATCH {p.decision.upper()} by {p.by}{simulated}: {len(p.deviations)} deviations,"
        f" {len(p.results)} QC results, CoA sha256 {p.coa_sha256[:12]}…{_why(p)}"
    )


def _refused(p: ReviewActRefused) -> str:
    reasons = f" ({len(p.reasons)} reasons)" if p.reasons else ""
    return f"REFUSED {p.act} of {p.subject} by {p.by}: {p.cause}{reasons} — {p.detail}"


_WORDS: Mapping[type[SitePayload], Callable[[SitePayload], str]] = {
    DeviationRaised: _raised,  # type: ignore[dict-item]
    DeviationClassified: _classified,  # type: ignore[dict-item]
    DeviationInvestigated: _investigated,  # type: ignore[dict-item]
    DeviationClosed: _closed,  # type: ignore[dict-item]
    DeviationWithdrawn: _withdrawn,  # type: ignore[dict-item]
    QcResultEntered: _entered,  # type: ignore[dict-item]
    QcResultsImported: _imported,  # type: ignore[dict-item]
    QcResultVerified: _verified,  # type: ignore[dict-item]
    QcResultInvalidated: _invalidated,  # type: ignore[dict-item]
    LimsSchemaDefined: _schema,  # type: ignore[dict-item]
    BatchDisposed: _disposed,  # type: ignore[dict-item]
    ReviewActRefused: _refused,  # type: ignore[dict-item]
}


def describe_review(payload: SitePayload) -> str:
    """One line for a review or release site record; ValueError for another kind."""
    words = _WORDS.get(type(payload))
    if words is None:
        raise ValueError(f"{payload.kind.value} is no review site record")
    return words(payload)


def review_summary(conn: Conn, run_id: str) -> str | None:
    """One line of where the batch's review stands (``cellauto verify``): its deviations
    by status, its valid QC results against the release plan, and QA's decision; None
    for a run with neither a release plan, a deviation nor a result."""
    deviations = read_deviations(conn, run_id=run_id)
    results = read_qc_results(conn, run_id, valid_only=True)
    plan = read_release_plan(conn, run_id)
    disposed = read_disposition(conn, run_id)
    if not deviations and not results and (plan is None or not plan.tests) and not disposed:
        return None
    statuses = Counter(row.status for row in deviations)
    shown = ", ".join(f"{count} {status}" for status, count in sorted(statuses.items()))
    parts = [f"{len(deviations)} deviation(s)" + (f" ({shown})" if shown else "")]
    if plan is not None and plan.tests:
        required = [test.name for test in plan.tests if test.required]
        have = {row.test for row in results}
        parts.append(f"{sum(name in have for name in required)}/{len(required)} QC results")
    if disposed is None:
        parts.append("not dispositioned")
    else:
        when = datetime.fromtimestamp(disposed.decided_wall_ns / 1e9, tz=UTC)
        parts.append(f"{disposed.decision} by {disposed.by_name} {when:%Y-%m-%d %H:%M} UTC")
    return "review: " + ", ".join(parts)
