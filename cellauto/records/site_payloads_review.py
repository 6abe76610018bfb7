"""The site records of review and release: deviations, QC results, QA's disposition.

They happen after the run, often days later, when no controller owns its chain any
more, so they live on the site chain (see :mod:`cellauto.records.site_payloads`), each
naming its run (``run_id``), each signed by the person who did it in the same site
transaction. A status is never edited: each transition is a record of its own.

Deviation ids are derived, never allocated: a deviation the runner recorded is
``DEV-<first 12 hex of the run id>-<nn>`` (nn its 1-based place among the run's
``deviation`` records); one raised by a person or opened by an out-of-specification QC
result is ``DEV-<run12>-S<nn>`` (nn one more than those already raised for the run).
QC results are ``QC-<run12>-<test slug>-<nn>``. See :mod:`cellauto.review.ids`.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from cellauto.records.lims_schema import LimsSchema
from cellauto.records.refs import HASH_PATTERN, RecordRef, SiteRef
from cellauto.records.site_payload_base import SiteKind, SitePayload

__all__ = [
    "DEVIATION_ID_PATTERN",
    "QC_RESULT_ID_PATTERN",
    "RUN_ID_PATTERN",
    "SITE_REVIEW_PAYLOADS",
    "BatchDisposed",
    "CertificateOfAnalysis",
    "Classification",
    "CoaDeviation",
    "CoaLine",
    "DeviationClassified",
    "DeviationClosed",
    "DeviationInvestigated",
    "DeviationRaised",
    "DeviationWithdrawn",
    "Evidence",
    "LimsSchemaDefined",
    "ProductImpact",
    "QcResultBody",
    "QcResultEntered",
    "QcResultInvalidated",
    "QcResultVerified",
    "QcResultsImported",
    "ReleaseProblem",
    "ReviewActRefused",
    "RootCauseCategory",
    "SampleIdentity",
    "Verdict",
]

_FROZEN = ConfigDict(frozen=True, extra="forbid")

DEVIATION_ID_PATTERN = r"^DEV-[0-9a-f]{12}-S?[0-9]{2,4}$"
QC_RESULT_ID_PATTERN = r"^QC-[0-9a-f]{12}-[a-z0-9-]{1,60}-[0-9]{2,4}$"
RUN_ID_PATTERN = r"^[0-9a-f]{12,64}$"

Verdict = Literal["pass", "fail"]
_Text = Field(min_length=10, max_length=4000)


class Classification(StrEnum):
    MINOR = "minor"
    MAJOR = "major"
    CRITICAL = "critical"


class RootCauseCategory(StrEnum):
    EQUIPMENT = "equipment"
    MATERIAL = "material"
    METHOD = "method"
    PERSONNEL = "personnel"
    ENVIRONMENT = "environment"
    IT_SYSTEM = "it system"
    UNKNOWN = "unknown"


class ProductImpact(StrEnum):
    NONE = "none"
    POTENTIAL = "potential"
    CONFIRMED = "confirmed"


class Evidence(BaseModel):
    """A document an investigation relied on, by its hash (the bytes stay where they are)."""

    model_config = _FROZEN

    name: str = Field(min_length=1, max_length=200)
    sha256: str = Field(pattern=HASH_PATTERN)
    size_bytes: int = Field(ge=0)


# -- deviations ---------------------------------------------------------------------------
class DeviationRaised(SitePayload):
    """A deviation raised by a person (``origin="person"``) or opened by an
    out-of-specification QC result (``origin="qc"``, in the result's transaction)."""

    kind: ClassVar[SiteKind] = SiteKind.DEVIATION_RAISED
    deviation_id: str = Field(pattern=DEVIATION_ID_PATTERN)
    run_id: str = Field(pattern=RUN_ID_PATTERN)
    origin: Literal["person", "qc"]
    step: str | None = None
    """A step of the run's plan, or None (the whole batch)."""
    title: str = Field(min_length=5, max_length=120)
    description: str = _Text
    observed_at: AwareDatetime | None = None
    qc_result: str | None = Field(None, pattern=QC_RESULT_ID_PATTERN)
    hold_requested: bool = False
    """A Hold of the (active) run was requested in the same transaction."""


class DeviationClassified(SitePayload):
    """QA's classification (signed ``reviewed``); ``previous`` set when re-classifying.

    ``run_record``: for a deviation the runner recorded, its ``deviation`` record (the
    first transition of such a deviation creates its row, and names the record it is)."""

    kind: ClassVar[SiteKind] = SiteKind.DEVIATION_CLASSIFIED
    deviation_id: str = Field(pattern=DEVIATION_ID_PATTERN)
    run_id: str = Field(pattern=RUN_ID_PATTERN)
    classification: Classification
    impact_assessment: str = _Text
    other_batches: list[str] = []
    previous: Classification | None = None
    run_record: RecordRef | None = None


class DeviationInvestigated(SitePayload):
    """The investigation (signed ``performed``): root cause and product impact."""

    kind: ClassVar[SiteKind] = SiteKind.DEVIATION_INVESTIGATED
    deviation_id: str = Field(pattern=DEVIATION_ID_PATTERN)
    run_id: str = Field(pattern=RUN_ID_PATTERN)
    root_cause: str = _Text
    category: RootCauseCategory
    product_impact: ProductImpact
    impact_detail: str = _Text
    evidence: list[Evidence] = []


class DeviationClosed(SitePayload):
    """QA's closure (signed ``approved``; never by the investigator)."""

    kind: ClassVar[SiteKind] = SiteKind.DEVIATION_CLOSED
    deviation_id: str = Field(pattern=DEVIATION_ID_PATTERN)
    run_id: str = Field(pattern=RUN_ID_PATTERN)
    conclusion: str = _Text
    capa: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{2,39}$")
    no_capa_reason: str | None = Field(None, min_length=10, max_length=2000)


class DeviationWithdrawn(SitePayload):
    """A deviation raised by a person in error, withdrawn by QA (signed ``approved``)."""

    kind: ClassVar[SiteKind] = SiteKind.DEVIATION_WITHDRAWN
    deviation_id: str = Field(pattern=DEVIATION_ID_PATTERN)
    run_id: str = Field(pattern=RUN_ID_PATTERN)
    cause: str = _Text


# -- QC results ---------------------------------------------------------------------------
class SampleIdentity(BaseModel):
    """Which sample a result is of: the lab's sample id and the batch's identity."""

    model_config = _FROZEN

    sample_id: str = Field(min_length=1, max_length=64)
    coi: str = Field(min_length=1, max_length=64)
    """Must equal the run's chain-of-identity id."""
    din: str | None = None
    """The ISBT 128 DIN (with flag) of the container sampled, when the lab reports it."""
    container: str | None = None
    """The run's container key, resolved from the DIN."""
    drawn_at: AwareDatetime | None = None


class QcResultBody(BaseModel):
    """One QC result, as entered by hand or imported: exactly one of value or text."""

    model_config = _FROZEN

    result_id: str = Field(pattern=QC_RESULT_ID_PATTERN)
    test: str = Field(min_length=1, max_length=80)
    sample: SampleIdentity
    method: str = Field(min_length=1, max_length=200)
    analyst: str = Field(min_length=1, max_length=120)
    tested_on: date
    instrument: str = Field(min_length=1, max_length=80)
    value: float | None = Field(None, allow_inf_nan=False)
    text: str | None = Field(None, min_length=1, max_length=200)
    unit: str = ""
    lims_row: int | None = Field(None, ge=1)
    """The 1-based row (CSV, header = row 1) or index + 1 (JSON) in the imported file."""

    @model_validator(mode="after")
    def _one_form(self) -> QcResultBody:
        if (self.value is None) == (self.text is None):
            raise ValueError(f"QC result {self.test!r}: give exactly one of value or text")
        return self


class QcResultEntered(SitePayload):
    """A result entered by hand (signed ``performed`` by the analyst entering it; counts
    for release once another person signed ``verified`` on this record)."""

    kind: ClassVar[SiteKind] = SiteKind.QC_RESULT_ENTERED
    run_id: str = Field(pattern=RUN_ID_PATTERN)
    result: QcResultBody
    observed: float | str
    """The result as compared with the spec (normalised, e.g. EU/kg)."""
    verdict: Verdict


class QcResultsImported(SitePayload):
    """One LIMS export imported (signed ``performed``): this batch's rows, in file order."""

    kind: ClassVar[SiteKind] = SiteKind.QC_RESULTS_IMPORTED
    run_id: str = Field(pattern=RUN_ID_PATTERN)
    file_name: str = Field(min_length=1, max_length=255)
    file_sha256: str = Field(pattern=HASH_PATTERN)
    file_bytes: int = Field(ge=0)
    schema_name: str
    schema_ref: SiteRef
    """The ``lims_schema_defined`` record the import relied on."""
    results: list[QcResultBody] = Field(min_length=1)
    observed: list[float | str]
    verdicts: list[Verdict]
    ignored_rows: int = Field(0, ge=0)
    """Rows of other batches in the same file."""

    @model_validator(mode="after")
    def _aligned(self) -> QcResultsImported:
        if not len(self.results) == len(self.observed) == len(self.verdicts):
            raise ValueError("results, observed and verdicts must have one entry per result")
        return self


class QcResultVerified(SitePayload):
    """A second person's check of a result entered by hand (signed ``verified``; never
    by the person who entered it)."""

    kind: ClassVar[SiteKind] = SiteKind.QC_RESULT_VERIFIED
    run_id: str = Field(pattern=RUN_ID_PATTERN)
    result_id: str = Field(pattern=QC_RESULT_ID_PATTERN)
    entry: SiteRef
    """The ``qc_result_entered`` record checked."""


class QcResultInvalidated(SitePayload):
    """A result taken out of consideration by QA (signed ``approved``): lab error
    confirmed, typically by the OOS investigation ``deviation_id``."""

    kind: ClassVar[SiteKind] = SiteKind.QC_RESULT_INVALIDATED
    run_id: str = Field(pattern=RUN_ID_PATTERN)
    result_id: str = Field(pattern=QC_RESULT_ID_PATTERN)
    cause: str = _Text
    deviation_id: str | None = Field(None, pattern=DEVIATION_ID_PATTERN)


class LimsSchemaDefined(SitePayload):
    """A LIMS export mapping (signed ``approved`` by QA); ``version`` one more than the
    previous of the same name."""

    kind: ClassVar[SiteKind] = SiteKind.LIMS_SCHEMA_DEFINED
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,39}$")
    version: int = Field(ge=1)
    lims: LimsSchema


# -- disposition --------------------------------------------------------------------------
class ReleaseProblem(BaseModel):
    """One reason a batch may not be released; ``where``: an anchor in the batch record
    (``r412`` a run record, ``s812`` a site record, a deviation or result id)."""

    model_config = _FROZEN

    code: str
    subject: str
    detail: str
    where: str | None = None


class CoaLine(BaseModel):
    """One test on the certificate of analysis."""

    model_config = _FROZEN

    test: str
    method: str
    specification: str
    result: str
    unit: str
    verdict: Literal["pass", "fail", "missing"]
    required: bool = True
    result_id: str | None = None
    analyst: str | None = None
    tested_on: date | None = None


class CoaDeviation(BaseModel):
    model_config = _FROZEN

    deviation_id: str
    classification: str | None
    status: str
    title: str


class CertificateOfAnalysis(BaseModel):
    """What QA certifies: the batch, its tests against their specifications, its
    deviations, and the decision. Built from the records at the decision; its canonical
    SHA-256 is in the disposition record, and ``verify`` rebuilds and compares it."""

    model_config = _FROZEN

    product: str
    batch_din: str | None
    coi: str | None
    patient_weight_kg: float | None = None
    protocol: str
    protocol_version: str
    protocol_sha256: str | None = None
    manufactured_from: datetime
    manufactured_to: datetime | None
    simulated: bool
    lines: list[CoaLine]
    deviations: list[CoaDeviation]
    decision: Literal["released", "rejected"]
    decided_by: str
    decided_at: datetime


class BatchDisposed(SitePayload):
    """QA's decision on a batch (signed ``released`` or ``rejected``); one per run."""

    kind: ClassVar[SiteKind] = SiteKind.BATCH_DISPOSED
    run_id: str = Field(pattern=RUN_ID_PATTERN)
    decision: Literal["released", "rejected"]
    simulated: bool
    """Copied from ``run_started``: a simulated batch's documents say so on every page."""
    run_head: RecordRef
    """The run's last record when it was verified for this decision."""
    site_verified_through: SiteRef | None
    checked: list[str]
    """The release rules evaluated and passed (empty for a rejection)."""
    deviations: list[str]
    results: list[str]
    coa: CertificateOfAnalysis
    coa_sha256: str = Field(pattern=HASH_PATTERN)


class ReviewActRefused(SitePayload):
    """An act of review or release that was refused, and why (a release refusal lists
    every reason)."""

    kind: ClassVar[SiteKind] = SiteKind.REVIEW_ACT_REFUSED
    run_id: str | None = None
    subject: str
    """The deviation id, result id, schema name or run id acted on."""
    act: str
    cause: str
    detail: str = ""
    reasons: list[ReleaseProblem] = []


SITE_REVIEW_PAYLOADS: tuple[type[SitePayload], ...] = (
    DeviationRaised,
    DeviationClassified,
    DeviationInvestigated,
    DeviationClosed,
    DeviationWithdrawn,
    QcResultEntered,
    QcResultsImported,
    QcResultVerified,
    QcResultInvalidated,
    LimsSchemaDefined,
    BatchDisposed,
    ReviewActRefused,
)
"""The payload models of the review and release site record kinds."""
