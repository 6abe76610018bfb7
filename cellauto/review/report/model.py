"""The batch record as plain data: what the report shows, read from the records, with no
rendering in it. :func:`cellauto.review.report.batch_record.build_batch_record` builds it;
the HTML and PDF renderers read only this tree.

Anchors: ``r<seq>`` is a run record, ``s<seq>`` a site record, a deviation id
(``DEV-…``) its row in "Deviations", a QC result id (``QC-…``) its row in "QC results",
and a section id (``review``, ``plots``, …) the section.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from cellauto.records.site_payloads_review import CertificateOfAnalysis

__all__ = [
    "SECTIONS",
    "Act",
    "AppendixRow",
    "BatchRecord",
    "CheckRow",
    "Correction",
    "DeviationEntry",
    "Disposition",
    "EquipmentRow",
    "Header",
    "Marker",
    "MaterialRow",
    "PlanTest",
    "QcEntry",
    "ReviewItem",
    "ReviewRecordRow",
    "Series",
    "SignatureLine",
    "StepSection",
    "Verification",
]

_FROZEN = ConfigDict(frozen=True, extra="forbid")

SECTIONS: tuple[tuple[str, str], ...] = (
    ("header", "Batch"),
    ("review", "Review by exception"),
    ("disposition", "Disposition and certificate of analysis"),
    ("deviations", "Deviations"),
    ("qc", "QC results"),
    ("plots", "Plots"),
    ("steps", "Steps"),
    ("parameters", "Parameters"),
    ("materials", "Materials and lots"),
    ("equipment", "Equipment"),
    ("audit", "Audit trail of corrections"),
    ("verification", "Verification"),
    ("appendix", "Appendix: the full record"),
)
"""Every section in order: (its id, its title)."""


class SignatureLine(BaseModel):
    """One electronic signature as printed: name, account, meaning, when, and where it is."""

    model_config = _FROZEN
    printed_name: str
    signer: str
    meaning: str
    signed_at: str
    """Local time with its zone and UTC offset, as the signer saw it."""
    where: str
    """``site #N``, ``SIMULATED OPERATOR`` or ``NO SITE RECORD``."""


class Header(BaseModel):
    model_config = _FROZEN
    product: str
    din: str | None
    coi: str | None
    run_id: str
    protocol: str
    protocol_version: str
    protocol_sha256: str | None
    started_utc: datetime
    ended_utc: datetime | None
    final_state: str | None
    exit_status: str | None
    simulated: bool
    disposition: str
    """``released by …``, ``rejected by …`` or ``not dispositioned``."""
    generated_at: datetime
    journal: str


class ReviewItem(BaseModel):
    """One thing a reviewer must look at, linked to its place in the record."""

    model_config = _FROZEN
    category: str
    severity: Literal["blocks release", "review"]
    title: str
    detail: str
    when_utc: datetime | None
    step: str | None
    anchor: str


class Disposition(BaseModel):
    model_config = _FROZEN
    decision: str
    by: str
    decided_at: datetime
    anchor: str
    coa: CertificateOfAnalysis | None
    coa_sha256: str


class DeviationEntry(BaseModel):
    model_config = _FROZEN
    deviation_id: str
    origin: str
    step: str | None
    title: str
    status: str
    classification: str | None
    product_impact: str | None
    capa: str | None
    opened_utc: datetime | None
    closed_utc: datetime | None
    process_time_s: float | None
    """When it happened on the process clock (runner deviations), for the plots."""
    run_anchor: str | None
    history: list[str]
    """Anchors (``s<seq>``) of its review records, in order."""


class PlanTest(BaseModel):
    model_config = _FROZEN
    name: str
    specification: str
    required: bool


class QcEntry(BaseModel):
    model_config = _FROZEN
    result_id: str
    test: str
    source: str
    result: str
    unit: str
    verdict: str
    status: str
    entered_by: str
    verified_by: str | None
    anchor: str


class Act(BaseModel):
    """A record of a step a reviewer reads: an operator act, a command, an identity check."""

    model_config = _FROZEN
    anchor: str
    when_utc: datetime
    text: str
    signatures: list[SignatureLine]


class CheckRow(BaseModel):
    model_config = _FROZEN
    anchor: str
    when_utc: datetime
    step: str
    check: str
    value: float
    unit: str
    specification: str
    verdict: Literal["pass", "fail"]
    borderline: bool
    verdict_problem: str | None


class StepSection(BaseModel):
    model_config = _FROZEN
    name: str
    path: list[str]
    anchor: str | None
    started_utc: datetime | None
    ended_utc: datetime | None
    duration: str | None
    outcome: str
    """``completed``, ``FAILED``, ``not started`` or ``in progress``."""
    attempts: int
    acts: list[Act]
    checks: list[CheckRow]


class MaterialRow(BaseModel):
    model_config = _FROZEN
    anchor: str
    step: str | None
    material: str
    lot_id: str
    supplier_lot: str
    expires_on: str
    quantity: str
    basis: str
    how: str


class EquipmentRow(BaseModel):
    model_config = _FROZEN
    anchor: str
    equipment: str
    asset: str | None
    serial: str
    model: str
    status: str | None
    calibration_due: str | None
    needed_through: str
    passed: bool
    problem: str | None


class Correction(BaseModel):
    model_config = _FROZEN
    anchor: str
    when_utc: datetime
    kind: str
    text: str


class ReviewRecordRow(BaseModel):
    """A review record of the run on the site chain, with its signatures."""

    model_config = _FROZEN
    anchor: str
    when_utc: datetime
    kind: str
    by: str
    text: str
    signatures: list[SignatureLine]


class Verification(BaseModel):
    model_config = _FROZEN
    run_intact: bool
    run_records: int
    run_head_hash: str | None
    run_sealed: bool
    run_anchored_seq: int | None
    run_problem: str | None
    site_intact: bool
    site_records: int
    site_head_hash: str | None
    site_problem: str | None
    review_problem: str | None
    """The run's review rows against their records (an edited row), None when they agree."""


class AppendixRow(BaseModel):
    model_config = _FROZEN
    anchors: list[str]
    """The first is the row's; a collapsed row keeps the anchors review items point at."""
    seq: str
    """``412`` or ``130-898`` for a collapsed row."""
    elsewhere: bool = False
    """The record is shown (and anchored) in its step; the row links there."""
    when_utc: datetime
    kind: str
    text: str


class Marker(BaseModel):
    """Something marked on the plots at a process time (or over an interval)."""

    model_config = _FROZEN
    kind: Literal["deviation", "alarm", "held", "gap"]
    label: str
    start_s: float
    end_s: float | None = None


class Series(BaseModel):
    """The plotted data: process times (epoch seconds) and values, per quantity."""

    model_config = _FROZEN
    start_s: float
    counts_t: list[float] = []
    viable_cells_per_ml: list[float] = []
    viability_pct: list[float] = []
    culture_t: list[float] = []
    glucose_mmol_per_l: list[float] = []
    lactate_mmol_per_l: list[float] = []
    ph: list[float] = []
    dissolved_oxygen_pct: list[float] = []
    temperature_c: list[float] = []
    setpoints_t: list[float] = []
    setpoint_ph: list[float] = []
    setpoint_do_pct: list[float] = []
    setpoint_temperature_c: list[float] = []
    freeze_t: list[float] = []
    chamber_c: list[float] = []
    sample_c: list[float] = []
    profile_t: list[float] = []
    profile_c: list[float] = []
    phase_change_s: float | None = None
    storage_t: list[float] = []
    storage_c: list[float] = []
    specs: dict[str, tuple[float | None, float | None]] = {}
    """Spec limits drawn on the plots, by quantity (``temperature_c``, ``glucose``, …)."""
    markers: list[Marker] = []


class BatchRecord(BaseModel):
    model_config = _FROZEN
    header: Header
    review: list[ReviewItem]
    disposition: Disposition | None
    deviations: list[DeviationEntry]
    plan: list[PlanTest] | None
    """The release plan's tests; None for a run recorded before release plans."""
    qc: list[QcEntry]
    series: Series
    steps: list[StepSection]
    parameters: list[tuple[str, str]]
    materials: list[MaterialRow]
    equipment: list[EquipmentRow]
    corrections: list[Correction]
    review_records: list[ReviewRecordRow]
    verification: Verification
    appendix: list[AppendixRow]
