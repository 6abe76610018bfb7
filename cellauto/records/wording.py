"""The batch record's wording of each record: one line a reviewer reads.

Used by ``cellauto show`` and by every report. A verdict is always recomputed from
what the record holds (a check's value and spec), never taken from its stored flag
alone; a stored flag that disagrees is shown as such.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from cellauto.records import payloads as rec
from cellauto.records.models import Record

__all__ = ["describe", "describe_io", "format_duration", "iso"]


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
        case rec.StateChange():
            return f"state {p.from_state} -> {p.to_state} ({p.cause})"
        case rec.Command():
            verdict = "accepted" if p.accepted else f"REFUSED: {p.refusal}"
            return f"command {p.command} by {p.by} in {p.state}: {verdict}"
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
        case rec.RunEnded():
            return f"run ended {p.final_state} ({p.exit_status}): {p.reason}"
    return None


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
    )


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
    return f"  {record.kind.value}"
