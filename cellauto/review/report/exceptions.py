"""Review by exception: only what a reviewer must look at, each item linked to its place.

The rules (:data:`RULES`) run over the run's records and its review state; the items are
sorted with those that block release first, then by time. An empty list is rendered as
"Nothing needs review by exception" followed by the rules, so the reader knows what was
looked for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from cellauto.records import payloads as rec
from cellauto.records.material_payloads import (
    CustodyMoved,
    EquipmentChecked,
    LabelVerified,
    MaterialUseVoided,
)
from cellauto.records.models import Record
from cellauto.records.spec import Spec
from cellauto.review.report.model import (
    Correction,
    DeviationEntry,
    PlanTest,
    QcEntry,
    ReviewItem,
    Verification,
)
from cellauto.review.report.series import reading_gaps

__all__ = ["BORDERLINE_PCT", "RULES", "borderline", "review_items"]

BORDERLINE_PCT = 5.0
"""A passing value this close to a limit is borderline: a percentage of the range between
two limits, or of the one limit's magnitude."""

RULES: tuple[tuple[str, str], ...] = (
    ("journal", "the run's chain, the ledger or the site chain does not verify (blocks)"),
    ("verdict mismatch", "a check's stored verdict disagrees with its value and spec (blocks)"),
    ("deviation", "every deviation of the run; blocks until closed or withdrawn"),
    ("QC result", "a required QC result missing or out of specification (blocks)"),
    ("missing signature", "a manual QC result not verified, an entry not verified (blocks)"),
    ("failed check", "an in-process check whose recomputed verdict is fail"),
    ("borderline check", f"a passing check within {BORDERLINE_PCT:g} % of a limit"),
    ("alarm", "every alarm"),
    ("hold/restart", "every change to Holding, Held, Restarting, Stopped or Aborted"),
    ("manual entry", "values typed by a person (not scans); manual QC results"),
    (
        "correction",
        "rejected entries, voided material uses, invalidated results, reclassified"
        " deviations, adjusted lots the batch used",
    ),
    ("resume", "a resume after a controller crash, a controller taken over"),
    ("connection gap", "an instrument connection lost; readings more than 3 intervals apart"),
    ("identity", "a failed chain-of-identity check"),
    ("equipment", "an instrument not fit for use when checked"),
    ("label", "a label whose scan did not match"),
)
"""Each rule: (its category, what it looks for)."""

_HELD_STATES = frozenset({"Holding", "Held", "Restarting", "Stopped", "Aborted"})
_BLOCKS = "blocks release"


def borderline(value: float, spec: Spec, pct: float = BORDERLINE_PCT) -> bool:
    """A passing value within ``pct`` % of a limit (see :data:`BORDERLINE_PCT`); never
    for a spec without a unit (flags and counts: 1 = done, 0 interruptions)."""
    if not spec.unit or not spec.accepts(value):
        return False
    if spec.min is not None and spec.max is not None:
        margin = (spec.max - spec.min) * pct / 100
    else:
        limit = spec.min if spec.min is not None else spec.max
        margin = abs(limit or 0.0) * pct / 100
    distances = [abs(value - limit) for limit in (spec.min, spec.max) if limit is not None]
    return margin > 0 and min(distances) < margin


def _item(
    category: str,
    title: str,
    detail: str,
    anchor: str,
    *,
    record: Record | None = None,
    when: datetime | None = None,
    step: str | None = None,
    blocks: bool = False,
) -> ReviewItem:
    if record is not None:
        when = record.process_time
        step = step or getattr(record.payload, "step", None)
    return ReviewItem(
        category=category,
        severity=_BLOCKS if blocks else "review",
        title=title,
        detail=detail,
        when_utc=when,
        step=step,
        anchor=anchor,
    )


def _run_items(
    records: Sequence[Record], acks: Mapping[int, str] | None = None
) -> list[ReviewItem]:
    items: list[ReviewItem] = []
    acks = acks or {}
    opened = {
        r.payload.task_id: r.payload for r in records if isinstance(r.payload, rec.TaskOpened)
    }
    # a scan is no typed entry: a task that asks for one, or one a custody move relied on
    scans = {task_id for task_id, t in opened.items() if t.summary.instruction.startswith("Scan")}
    scans |= {
        r.payload.task_id
        for r in records
        if isinstance(r.payload, CustodyMoved) and r.payload.task_id is not None
    }
    answered: dict[str, Record] = {}
    verified: set[str] = set()
    for r in records:
        p = r.payload
        a = f"r{r.seq}"
        match p:
            case rec.CheckResult():
                problem = p.verdict_problem()
                if problem is not None:
                    items.append(
                        _item("verdict mismatch", p.check, problem, a, record=r, blocks=True)
                    )
                if not p.recomputed:
                    spec = p.spec.describe()
                    items.append(
                        _item("failed check", p.check, f"{p.value:g} against {spec}", a, record=r)
                    )
                elif borderline(p.value, p.spec):
                    spec = p.spec.describe()
                    items.append(
                        _item(
                            "borderline check", p.check, f"{p.value:g} against {spec}", a, record=r
                        )
                    )
            case rec.IdentityCheck():
                problem = p.verdict_problem()
                if problem is not None:
                    items.append(
                        _item("verdict mismatch", p.check, problem, a, record=r, blocks=True)
                    )
                if not p.recomputed:
                    why = p.problem or f"observed {p.observed!r}, expected {p.expected!r}"
                    items.append(_item("identity", p.check, why, a, record=r))
            case rec.Alarm():
                ack = acks.get(r.seq)
                said = (
                    f"{p.message} (acknowledged by {ack})"
                    if ack
                    else f"{p.message} (not acknowledged)"
                )
                items.append(_item("alarm", f"{p.severity} alarm ({p.source})", said, a, record=r))
                if p.gap_started_process_time_s is not None:
                    items.append(
                        _item(
                            "connection gap",
                            f"connection lost ({p.source})",
                            p.message,
                            a,
                            record=r,
                        )
                    )
            case rec.StateChange() if p.to_state in _HELD_STATES:
                items.append(
                    _item("hold/restart", f"{p.from_state} → {p.to_state}", p.cause, a, record=r)
                )
            case rec.TaskAnswered():
                answered[p.task_id] = r
                if p.value is not None and p.task_id not in scans:
                    task = opened.get(p.task_id)
                    name = task.name if task else p.task_id
                    unit = f" {task.summary.unit}" if task and task.summary.unit else ""
                    items.append(
                        _item(
                            "manual entry",
                            name,
                            f"{p.value}{unit} entered by {p.signature.printed_name}",
                            a,
                            record=r,
                            step=task.step if task else None,
                        )
                    )
            case rec.TaskVerified():
                verified.add(p.task_id)
            case rec.TaskRejected():
                items.append(
                    _item(
                        "correction", f"task {p.task_id} rejected", p.detail or p.cause, a, record=r
                    )
                )
            case MaterialUseVoided():
                items.append(
                    _item("correction", f"use of lot {p.lot_id} voided", p.cause, a, record=r)
                )
            case rec.RunResumed():
                doubts = len(p.in_doubt_commands)
                detail = f"by {p.resumed_by}; {doubts} command(s) in doubt"
                items.append(
                    _item("resume", "run resumed after a controller restart", detail, a, record=r)
                )
            case rec.ControllerClaimed() if p.epoch > 1:
                items.append(
                    _item("resume", f"controller epoch {p.epoch} took charge", "", a, record=r)
                )
            case EquipmentChecked() if not p.passed:
                items.append(
                    _item("equipment", p.equipment, p.problem or "not fit for use", a, record=r)
                )
            case LabelVerified() if not p.matches:
                items.append(
                    _item("label", p.container, p.problem or "scan does not match", a, record=r)
                )
    for task_id, task in opened.items():
        if task.summary.verify and task_id in answered and task_id not in verified:
            r = answered[task_id]
            items.append(
                _item(
                    "missing signature",
                    f"{task.name}: no second-person verification",
                    f"task {task_id} was answered but never verified",
                    f"r{r.seq}",
                    record=r,
                    blocks=True,
                )
            )
    for before, after in reading_gaps(records):
        p = after.payload
        if not isinstance(p, rec.Reading):  # reading_gaps pairs readings only
            continue
        hours = (after.process_time_s - before.process_time_s) / 3600
        items.append(
            _item(
                "connection gap",
                f"no {p.instrument}.{p.method} readings for {hours:.1f} h",
                f"from record {before.seq} to record {after.seq}",
                f"r{after.seq}",
                record=after,
            )
        )
    return items


def _review_items(
    deviations: Sequence[DeviationEntry],
    qc: Sequence[QcEntry],
    plan: Sequence[PlanTest] | None,
    corrections: Sequence[Correction],
    verification: Verification,
) -> list[ReviewItem]:
    items: list[ReviewItem] = []
    problems = [
        ("run chain", verification.run_problem),
        ("site chain", verification.site_problem),
        ("review rows", verification.review_problem),
    ]
    for what, problem in problems:
        if problem is not None:
            items.append(
                _item("journal", f"{what} does not verify", problem, "verification", blocks=True)
            )
    for d in deviations:
        terminal = d.status in ("closed", "withdrawn")
        klass = f", {d.classification}" if d.classification else ""
        items.append(
            _item(
                "deviation",
                f"{d.deviation_id} ({d.status}{klass})",
                d.title,
                d.deviation_id,
                when=d.opened_utc,
                step=d.step,
                blocks=not terminal,
            )
        )
    valid = [q for q in qc if q.status == "valid"]
    for q in valid:
        if q.verdict == "fail":
            detail = f"{q.result} {q.unit}".strip()
            items.append(
                _item(
                    "QC result", f"{q.test} out of specification", detail, q.result_id, blocks=True
                )
            )
        if q.source == "manual":
            items.append(
                _item("manual entry", f"QC {q.test} entered by hand", q.entered_by, q.result_id)
            )
            if q.verified_by is None:
                items.append(
                    _item(
                        "missing signature",
                        f"QC {q.test} not verified",
                        q.result_id,
                        q.result_id,
                        blocks=True,
                    )
                )
    have = {q.test for q in valid}
    for test in plan or []:
        if test.required and test.name not in have:
            items.append(
                _item("QC result", f"{test.name}: no result", test.specification, "qc", blocks=True)
            )
    for c in corrections:
        if not c.anchor.startswith("r"):  # the run's own are found from its records
            items.append(_item("correction", c.kind, c.text, c.anchor, when=c.when_utc))
    return items


def review_items(
    records: Sequence[Record],
    *,
    deviations: Sequence[DeviationEntry],
    qc: Sequence[QcEntry],
    plan: Sequence[PlanTest] | None,
    corrections: Sequence[Correction],
    verification: Verification,
    alarm_acks: Mapping[int, str] | None = None,
) -> list[ReviewItem]:
    """Every item of review by exception: blocking first (a journal that does not verify
    before all), then by time; items of no moment (a missing QC result) after the dated.
    ``alarm_acks``: alarm record seq -> "who: comment" of its acknowledgement."""
    items = _review_items(deviations, qc, plan, corrections, verification)
    items += _run_items(records, alarm_acks)
    last = datetime.max.replace(tzinfo=UTC)
    return sorted(
        items,
        key=lambda i: (
            i.severity != _BLOCKS,
            i.category != "journal",
            i.when_utc or last,
            i.category,
            i.anchor,
        ),
    )
