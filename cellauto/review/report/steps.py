"""The step-by-step part of the batch record: each step's timing, acts and signatures,
checks against specifications; the materials and equipment tables; and the appendix
(every run record in words, consecutive readings of one instrument collapsed to a row).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC

from cellauto.records import payloads as rec
from cellauto.records.kinds import RecordKind
from cellauto.records.material_payloads import EquipmentChecked, MaterialConsumed
from cellauto.records.models import Record
from cellauto.records.wording import describe, describe_io, format_duration, signatures_of
from cellauto.review.report.exceptions import borderline
from cellauto.review.report.model import (
    Act,
    AppendixRow,
    CheckRow,
    EquipmentRow,
    MaterialRow,
    SignatureLine,
    StepSection,
)
from cellauto.review.report.review_text import signature_line

__all__ = ["appendix_rows", "equipment_rows", "material_rows", "steps_of"]

ACT_KINDS = frozenset(
    {
        RecordKind.TASK_OPENED,
        RecordKind.TASK_ANSWERED,
        RecordKind.TASK_VERIFIED,
        RecordKind.TASK_REJECTED,
        RecordKind.TASK_EXPIRED,
        RecordKind.TASK_WITHDRAWN,
        RecordKind.OPERATOR_ACTION,
        RecordKind.COMMAND,
        RecordKind.STATE_CHANGE,
        RecordKind.IDENTITY_CHECK,
        RecordKind.DEVIATION,
        RecordKind.ALARM,
        RecordKind.BATCH_VALUE,
        RecordKind.RUN_RESUMED,
        RecordKind.MATERIAL_CONSUMED,
        RecordKind.MATERIAL_USE_VOIDED,
        RecordKind.CONTAINER_CREATED,
        RecordKind.TRANSFER,
        RecordKind.CUSTODY_MOVED,
        RecordKind.LABEL_PRINTED,
        RecordKind.LABEL_VERIFIED,
    }
)
"""The records a step section shows as its acts (checks have their own table)."""


def _signatures(record: Record) -> list[SignatureLine]:
    return [signature_line(s) for s in signatures_of(record.payload)]


def _first_line(text: str | None) -> str:
    return (text or "").split("\n", 1)[0]


class _Step:
    def __init__(self, plan: rec.StepPlan) -> None:
        self.plan = plan
        self.anchor: str | None = None
        self.started: Record | None = None
        self.ended: Record | None = None
        self.outcome = "not started"
        self.attempts = 0
        self.acts: list[Act] = []
        self.checks: list[CheckRow] = []

    def section(self) -> StepSection:
        duration = None
        if self.started is not None and self.ended is not None:
            duration = format_duration(self.ended.process_time_s - self.started.process_time_s)
        return StepSection(
            name=self.plan.name,
            path=self.plan.path,
            anchor=self.anchor,
            started_utc=None if self.started is None else self.started.process_time,
            ended_utc=None if self.ended is None else self.ended.process_time,
            duration=duration,
            outcome=self.outcome,
            attempts=self.attempts,
            acts=self.acts,
            checks=self.checks,
        )


def steps_of(records: Sequence[Record]) -> tuple[list[StepSection], set[int]]:
    """Each planned step's section, and the records (by seq) the sections anchor."""
    started = next((r.payload for r in records if isinstance(r.payload, rec.RunStarted)), None)
    plans = [] if started is None else started.steps
    steps = {plan.name: _Step(plan) for plan in plans}
    shown: set[int] = set()
    current: _Step | None = None
    for r in records:
        p = r.payload
        if isinstance(p, rec.StepStarted):
            current = steps.get(p.step)
            if current is not None:
                current.attempts += 1
                current.outcome = "in progress"
                if current.started is None:
                    current.started, current.anchor = r, f"r{r.seq}"
                    shown.add(r.seq)
            continue
        if isinstance(p, rec.StepCompleted | rec.StepFailed):
            step = steps.get(p.step)
            if step is not None:
                step.ended = r
                step.outcome = "completed" if isinstance(p, rec.StepCompleted) else "FAILED"
            current = None
            continue
        step = steps.get(getattr(p, "step", None) or "") or current
        if step is None:
            continue
        if isinstance(p, rec.CheckResult):
            step.checks.append(
                CheckRow(
                    anchor=f"r{r.seq}",
                    when_utc=r.process_time,
                    step=p.step,
                    check=p.check,
                    value=p.value,
                    unit=p.spec.unit,
                    specification=p.spec.describe(),
                    verdict="pass" if p.recomputed else "fail",
                    borderline=borderline(p.value, p.spec),
                    verdict_problem=p.verdict_problem(),
                )
            )
            shown.add(r.seq)
        elif r.kind in ACT_KINDS:
            step.acts.append(
                Act(
                    anchor=f"r{r.seq}",
                    when_utc=r.process_time,
                    text=_first_line(describe(r)),
                    signatures=_signatures(r),
                )
            )
            shown.add(r.seq)
    return [step.section() for step in steps.values()], shown


def material_rows(records: Sequence[Record]) -> list[MaterialRow]:
    """Every use of a lot, in order."""
    rows = []
    for r in records:
        p = r.payload
        if isinstance(p, MaterialConsumed):
            unit = f" {p.unit}" if p.unit else ""
            rows.append(
                MaterialRow(
                    anchor=f"r{r.seq}",
                    step=p.step,
                    material=p.material,
                    lot_id=p.lot.lot_id,
                    supplier_lot=p.lot.supplier_lot,
                    expires_on=p.lot.expires_on.isoformat(),
                    quantity=f"{p.quantity_milli / 1000:g}{unit}",
                    basis=p.amount_basis,
                    how=p.how_chosen + (f" ({p.scanned})" if p.scanned else ""),
                )
            )
    return rows


def equipment_rows(records: Sequence[Record]) -> list[EquipmentRow]:
    """Each instrument as checked when used: one row per distinct finding (its first)."""
    started = next((r.payload for r in records if isinstance(r.payload, rec.RunStarted)), None)
    identities = {} if started is None else started.instruments
    rows: list[EquipmentRow] = []
    seen: set[tuple[object, ...]] = set()
    for r in records:
        p = r.payload
        if not isinstance(p, EquipmentChecked):
            continue
        key = (p.equipment, p.asset, p.serial_read, p.status, p.calibration_due, p.passed)
        if key in seen:
            continue
        seen.add(key)
        identity = identities.get(p.equipment)
        model = f"{identity.vendor} {identity.model}" if identity else ""
        rows.append(
            EquipmentRow(
                anchor=f"r{r.seq}",
                equipment=p.equipment,
                asset=p.asset,
                serial=p.serial_read,
                model=model,
                status=p.status,
                calibration_due=None
                if p.calibration_due is None
                else p.calibration_due.isoformat(),
                needed_through=p.through.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                passed=p.passed,
                problem=p.problem,
            )
        )
    return rows


def _collapsible(record: Record) -> tuple[str, str] | None:
    p = record.payload
    return (p.instrument, p.method) if isinstance(p, rec.Reading) else None


def appendix_rows(
    records: Sequence[Record], *, shown: Collection[int], keep: Collection[str]
) -> list[AppendixRow]:
    """One row per record; a run of consecutive readings of one instrument and method is
    one row, keeping the anchors in ``keep`` (those review items point at)."""
    rows: list[AppendixRow] = []
    i = 0
    while i < len(records):
        r = records[i]
        group = _collapsible(r)
        j = i + 1
        if group is not None:
            while j < len(records) and _collapsible(records[j]) == group:
                j += 1
        if j - i > 2 and group is not None:
            last = records[j - 1]
            anchors = [f"r{r.seq}"] + [
                f"r{x.seq}" for x in records[i + 1 : j] if f"r{x.seq}" in keep
            ]
            rows.append(
                AppendixRow(
                    anchors=anchors,
                    seq=f"{r.seq}-{last.seq}",
                    when_utc=r.process_time,
                    kind="reading",
                    text=(
                        f"{j - i} readings of {group[0]}.{group[1]} from"
                        f" {r.process_time:%Y-%m-%d %H:%M} to {last.process_time:%Y-%m-%d %H:%M}"
                        " UTC (see the plots)"
                    ),
                )
            )
            i = j
            continue
        for x in records[i:j]:
            text = describe(x)
            rows.append(
                AppendixRow(
                    anchors=[] if x.seq in shown else [f"r{x.seq}"],
                    seq=str(x.seq),
                    when_utc=x.process_time,
                    kind=x.kind.value,
                    text=(text if text is not None else describe_io(x).strip()),
                    elsewhere=x.seq in shown,
                )
            )
        i = j
    return rows
