"""The certificate of analysis: the batch, each release test against its specification,
its deviations and QA's decision, built from the records at the moment of decision.

The certificate is embedded in the ``batch_disposed`` site record with its canonical
SHA-256 (:func:`coa_sha256`), so it is part of the batch record and ``verify`` can
rebuild it from the same records and compare.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Literal

from cellauto.records.canonical import canonical_bytes
from cellauto.records.release_plan import Qualitative, ReleaseTest
from cellauto.records.site_payloads_review import (
    CertificateOfAnalysis,
    CoaDeviation,
    CoaLine,
    QcResultBody,
)
from cellauto.review.batch_facts import BatchFacts
from cellauto.review.read import DeviationRow, QcRow

__all__ = ["build_coa", "coa_line", "coa_sha256", "describe_spec", "shown_result"]


def describe_spec(test: ReleaseTest) -> str:
    """The specification in words: ``no growth``, ``<= 5 EU/kg``, ``80..120 % of target``."""
    if isinstance(test.spec, Qualitative):
        return test.spec.describe()
    described = test.spec.describe()
    unit = test.spec_unit
    return described if test.spec.unit or not unit else f"{described} {unit}"


def shown_result(row: QcRow) -> str:
    """The result as compared with the spec (the normalised value, or the text)."""
    if isinstance(row.observed, str):
        return row.observed
    return f"{row.observed:.4g}"


def coa_line(test: ReleaseTest, row: QcRow | None, body: QcResultBody | None = None) -> CoaLine:
    """One test's line: its valid result (``row``, with its recorded ``body`` giving the
    analyst and test date), or missing."""
    verdict: Literal["pass", "fail", "missing"] = "missing"
    if row is not None:
        verdict = "pass" if row.verdict == "pass" else "fail"
    return CoaLine(
        test=test.name,
        method=test.method,
        specification=describe_spec(test),
        result="" if row is None else shown_result(row),
        unit=test.spec_unit,
        verdict=verdict,
        required=test.required,
        result_id=None if row is None else row.result_id,
        analyst=None if body is None else body.analyst,
        tested_on=None if body is None else body.tested_on,
    )


def build_coa(
    facts: BatchFacts,
    results: Sequence[QcRow],
    deviations: Sequence[DeviationRow],
    *,
    decision: Literal["released", "rejected"],
    decided_by: str,
    decided_at: datetime,
    bodies: Mapping[str, QcResultBody] | None = None,
) -> CertificateOfAnalysis:
    """The certificate from the run's facts, its valid QC results (one per test, each
    line with its analyst and test date from ``bodies``, result id -> recorded body:
    :func:`cellauto.review.read.qc_result_bodies`) and its deviations."""
    bodies = bodies or {}
    valid = {row.test: row for row in results if row.status == "valid"}
    tests = facts.plan.tests if facts.plan is not None else []
    weight = facts.params.get("patient_weight_kg")
    return CertificateOfAnalysis(
        product=facts.plan.product if facts.plan is not None else facts.started.protocol_name,
        batch_din=facts.din,
        coi=facts.coi,
        patient_weight_kg=float(weight) if isinstance(weight, int | float) else None,
        protocol=facts.started.protocol_name,
        protocol_version=facts.started.protocol_version,
        protocol_sha256=facts.started.protocol_source_sha256,
        manufactured_from=facts.started_at,
        manufactured_to=facts.ended_at,
        simulated=facts.simulated,
        lines=[_line(test, valid.get(test.name), bodies) for test in tests],
        deviations=[
            CoaDeviation(
                deviation_id=row.deviation_id,
                classification=row.classification,
                status=row.status,
                title=row.title,
            )
            for row in deviations
        ],
        decision=decision,
        decided_by=decided_by,
        decided_at=decided_at,
    )


def _line(test: ReleaseTest, row: QcRow | None, bodies: Mapping[str, QcResultBody]) -> CoaLine:
    return coa_line(test, row, None if row is None else bodies.get(row.result_id))


def coa_sha256(coa: CertificateOfAnalysis) -> str:
    """The SHA-256 of the certificate's canonical JSON."""
    return hashlib.sha256(canonical_bytes(coa.model_dump(mode="json"))).hexdigest()
