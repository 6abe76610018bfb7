"""The batch record's wording of each record: one line a reviewer reads.

Used by ``cellauto show`` and by every report. A verdict is always recomputed from
what the record holds (a check's value and spec), never taken from its stored flag
alone; a stored flag that disagrees is shown as such.

A record that embeds electronic signatures (an operator task answered, verified or
rejected; a command given with a signature, such as a supervisor's approval of a
Restart after a deviation) is followed by one line per signature, indented under it::

    task 7F3K2Q9A performed
              signed: Alice Martin (alice) — performed — 2026-01-05 09:14:03 CET (+01:00)  [site #4]

(``[SIMULATED OPERATOR]`` in place of the site record for a simulated operator).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from cellauto.records import payloads as rec
from cellauto.records.material_payloads import EquipmentChecked
from cellauto.records.models import Record
from cellauto.records.refs import SignatureShown
from cellauto.records.wording_containers import describe_container

__all__ = [
    "SIGNATURE_INDENT",
    "describe",
    "describe_io",
    "describe_signature",
    "format_duration",
    "iso",
    "signatures_of",
    "signed_at_local",
]

SIGNATURE_INDENT = " " * 10
"""What a signature line under its record starts with."""


def format_duration(seconds: float) -> str:
    """``2d 03h15m``, ``3h05m`` or ``4m07s``."""
    seconds = max(0.0, seconds)
    days, rest = divmod(round(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h{minutes:02d}m"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s"


def iso(process_time_s: float) -> str:
    """Seconds since the epoch as ``YYYY-MM-DD HH:MM:SS`` (UTC)."""
    return datetime.fromtimestamp(process_time_s, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _number(value: Any) -> str:
    """A recorded number for reading; non-finite values come back as text ("NaN")."""
    return f"{value:g}" if isinstance(value, int | float) else str(value)


def _verdict(payload: rec.CheckResult | rec.IdentityCheck, good: str, bad: str) -> str:
    verdict = good if payload.recomputed else bad
    problem = payload.verdict_problem()
    return verdict if problem is None else f"{verdict} [RECORD DISAGREES: {problem}]"


def describe(record: Record) -> str | None:
    """One line for the batch record; None for instrument I/O (see :func:`describe_io`)."""
    p = record.payload
    match p:
        case rec.RunStarted():
            return (
                f"run started: {p.protocol_name} {p.protocol_version} (source sha256 "
                f"{str(p.protocol_source_sha256)[:12]}…) on line {p.line} by {p.operator}; "
                f"parameters {_json(p.parameters)}"
            )
        case rec.StepStarted():
            again = f" (attempt {p.attempt})" if p.attempt > 1 else ""
            return f"step {p.index + 1} started: {' / '.join(p.path)}{again}"
        case rec.StepCompleted():
            return f"step {p.step} completed in {format_duration(p.duration_s)}"
        case rec.StepFailed():
            return f"step {p.step} FAILED: {p.error_type}: {p.error}"
        case rec.CheckResult():
            limits = " ".join(
                f"{name} {_number(limit)}"
                for name, limit in (("min", p.spec.min), ("max", p.spec.max))
                if limit is not None
            )
            verdict = _verdict(p, "pass", "FAIL")
            return f"check {p.check}: {_number(p.value)} {p.spec.unit} [{limits}] {verdict}"
        case rec.IdentityCheck():
            verdict = _verdict(p, "pass", "FAIL")
            why = f" ({p.problem})" if p.problem else ""
            return (
                f"check {p.check}: observed {p.observed!r} expected {p.expected!r}{why} {verdict}"
            )
        case rec.Deviation():
            return f"DEVIATION ({p.policy.value}): {p.description}"
        case EquipmentChecked():
            return _describe_equipment_check(p)
        case rec.StateChange():
            return f"state {p.from_state} -> {p.to_state} ({p.cause})"
        case rec.Command():
            verdict = "accepted" if p.accepted else f"REFUSED: {p.refusal}"
            line = f"command {p.command} by {p.by} in {p.state}: {verdict}"
            if p.signature is not None:
                line += "\n" + SIGNATURE_INDENT + describe_signature(p.signature)
            return line
        case rec.Alarm():
            return f"ALARM {p.severity} ({p.source}): {p.message}"
        case rec.OperatorAction():
            return f"operator {p.operator}: {p.action} {p.detail}".rstrip()
        case rec.BatchValue():
            unit = f" {p.unit}" if p.unit else ""
            return f"value {p.name} = {_number(p.value)}{unit}"
        case rec.RunResumed():
            return _describe_resume(p)
        case rec.ControllerClaimed():
            return _describe_claim(p)
        case rec.ControllerReleased():
            to = f" for controller {p.to_controller}" if p.to_controller else ""
            return f"CONTROLLER {p.controller} (epoch {p.epoch}) released the run{to}: {p.reason}"
        case rec.RunEnded():
            return f"run ended {p.final_state} ({p.exit_status}): {p.reason}"
    task = _describe_task(p)
    if task is None:
        return describe_container(p)
    return "\n".join([task, *(SIGNATURE_INDENT + describe_signature(s) for s in signatures_of(p))])


def _describe_equipment_check(p: EquipmentChecked) -> str:
    """``equipment counter (asset SIM-counter, serial CC-0002): in_service, calibrated
    through 2027-01-05, needed through 2026-01-07 08:00 UTC pass``."""
    where = f"asset {p.asset}, " if p.asset else ""
    due = "" if p.calibration_due is None else f", calibrated through {p.calibration_due}"
    needed = p.through.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    head = f"equipment {p.equipment} ({where}serial {p.serial_read})"
    if p.passed:
        return f"{head}: {p.status}{due}, needed through {needed} pass"
    return f"{head} FAIL: {p.problem}"


def _describe_task(p: rec.Payload) -> str | None:
    match p:
        case rec.TaskOpened():
            return _describe_opened(p)
        case rec.TaskAnswered():
            late = " (LATE: after the task's timeout)" if p.late else ""
            if p.value is None:
                return f"task {p.task_id} performed{late}"
            return f"task {p.task_id} answered: {_json(p.value)}{late}"
        case rec.TaskVerified():
            late = " (LATE: after the task's timeout)" if p.late else ""
            return f"task {p.task_id} verified{late}"
        case rec.TaskRejected():
            detail = f": {p.detail}" if p.detail else ""
            return f"task {p.task_id} REJECTED ({p.cause}){detail}"
        case rec.TaskExpired():
            return f"task {p.task_id} EXPIRED: not answered in time (policy {p.policy})"
        case rec.TaskWithdrawn():
            return f"task {p.task_id} withdrawn: {p.why}"
    return None


def _describe_opened(p: rec.TaskOpened) -> str:
    s = p.summary
    name = p.name + (f" [{p.key}]" if p.key else "")
    if s.what == "confirm":
        what = f"confirm {name!r}"
    else:
        details = [s.value_type or "value"]
        if s.unit:
            details.append(s.unit)
        if s.spec is not None:
            details.append(f"spec {s.spec.describe()}")
        if s.pattern is not None:
            details.append(f"pattern {s.pattern}")
        if s.choices is not None:
            details.append("one of " + "/".join(s.choices))
        what = f"enter {name!r} ({', '.join(details)})"
    extras = []
    if s.verify:
        extras.append("verified by a second person")
    if p.timeout_h is not None:
        extras.append(f"answer within {p.timeout_h:g} h, then {p.on_timeout}")
    if p.attempt > 1:
        extras.append(f"attempt {p.attempt}")
    if p.answered_by == "simulated":
        extras.append("simulated operators")
    tail = f" [{'; '.join(extras)}]" if extras else ""
    return f"TASK {p.task_id} opened: {what} — {s.instruction}{tail}"


def signatures_of(payload: rec.Payload) -> list[SignatureShown]:
    """The electronic signatures a record embeds, in order (none for most kinds)."""
    match payload:
        case rec.TaskAnswered() | rec.TaskVerified():
            return [payload.signature]
        case rec.TaskRejected() if payload.by is not None:
            return [payload.by]
        case rec.Command() if payload.signature is not None:
            return [payload.signature]
        case rec.RunResumed() if payload.signature is not None:
            return [payload.signature]
    return []


def _offset(text: str) -> timedelta | None:
    """``+01:00`` as a timedelta; None if it is not such an offset."""
    sign = {"+": 1, "-": -1}.get(text[:1])
    hours, _, minutes = text[1:].partition(":")
    if sign is None or not (hours.isdigit() and minutes.isdigit()):
        return None
    return sign * timedelta(hours=int(hours), minutes=int(minutes))


def signed_at_local(signature: SignatureShown) -> tuple[datetime, str]:
    """When it was signed in the signer's site time zone, and the zone's abbreviation.

    The recorded offset is what the time is shown with (the record says what the signer
    saw); the abbreviation comes from the time zone database when it knows the zone and
    agrees with that offset, else it is the offset itself.
    """
    offset = _offset(signature.utc_offset) or timedelta(0)
    local = signature.signed_at.astimezone(timezone(offset))
    try:
        zoned = signature.signed_at.astimezone(ZoneInfo(signature.time_zone))
    except (ZoneInfoNotFoundError, ValueError):
        return local, signature.utc_offset
    if zoned.utcoffset() != offset:
        return local, signature.utc_offset
    return local, zoned.tzname() or signature.utc_offset


def describe_signature(signature: SignatureShown) -> str:
    """One line: ``signed: NAME (ACCOUNT) — MEANING — LOCAL TIME ZONE (OFFSET)  [site #SEQ]``."""
    local, zone = signed_at_local(signature)
    if signature.simulated:
        where = "[SIMULATED OPERATOR]"
    elif signature.site is not None:
        where = f"[site #{signature.site.seq}]"
    else:
        where = "[NO SITE RECORD]"
    return (
        f"signed: {signature.printed_name} ({signature.signer}) — {signature.meaning.value} — "
        f"{local.strftime('%Y-%m-%d %H:%M:%S')} {zone} ({signature.utc_offset})  {where}"
    )


def _describe_resume(p: rec.RunResumed) -> str:
    where = (
        f"step {p.interrupted_step} in progress ({p.resume_policy})"
        if p.interrupted_step
        else "between steps"
    )
    doubts = ", ".join(f"{c.instrument}.{c.method} #{c.seq}" for c in p.in_doubt_commands)
    return (
        f"RUN RESUMED by {p.resumed_by} after a controller restart, "
        f"{format_duration(p.since_last_record_s)} after the last record: {p.state}, "
        f"{where}" + (f"; in doubt: {doubts}" if doubts else "")
    ) + ("" if p.signature is None else "\n" + SIGNATURE_INDENT + describe_signature(p.signature))


def _controller(host: str | None, pid: int | None, epoch: int) -> str:
    if host is None or pid is None:
        return f"epoch {epoch} (simulation: host and pid not recorded)"
    return f"pid {pid} on {host} (epoch {epoch})"


def _describe_claim(p: rec.ControllerClaimed) -> str:
    text = f"CONTROLLER {_controller(p.host, p.pid, p.epoch)} took charge of the run"
    before = p.taken_over_from
    if before is None:
        return text
    previous = _controller(before.host, before.pid, before.epoch)
    why = {
        "released": "which had released the run",
        "gone": "whose process was gone",
        "stale": f"whose last heartbeat was {format_duration(before.heartbeat_age_s)} old",
    }.get(before.why, before.why)
    return f"{text}, after {previous}, {why}"


def describe_io(record: Record) -> str:
    """One line for instrument I/O and bookkeeping (``show --all``)."""
    p = record.payload
    match p:
        case rec.InstrumentCommand():
            return f"  > {p.instrument}.{p.method}({_json(p.arguments)})"
        case rec.InstrumentResponse():
            result = p.result if p.ok else (p.error.model_dump() if p.error else None)
            return f"  < {p.instrument}.{p.method}: {_json(result)}"
        case rec.Reading():
            return f"  = {p.instrument}.{p.method}: {_json(p.value)}"
        case rec.Checkpoint():
            return f"  · checkpoint {p.name} = {_json(p.value)}"
        case rec.InstrumentWaited():
            behind = ", ".join(
                w.run_id[:12] + (" (past its maximum hold)" if w.overdue else "")
                for w in p.waited_for
            )
            return (
                f"  … waited {format_duration(p.waited_s or 0.0)} for {p.instrument}"
                f" ({p.asset})" + (f" behind {behind}" if behind else "")
            )
        case rec.InstrumentReleased():
            overdue = f", PAST its maximum of {p.max_hold_s:g} s" if p.overdue else ""
            return (
                f"  … released {p.instrument} ({p.asset}) after "
                f"{format_duration(p.held_s or 0.0)}{overdue}"
            )
    return f"  {record.kind.value}"
