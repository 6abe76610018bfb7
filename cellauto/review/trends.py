"""Trends across batches: each batch's metrics, control limits and out-of-trend flags.

:func:`batch_metrics` reads one run's metrics from the journal: fold expansion (the
``fold expansion`` batch value, else ``harvest viable cells`` / ``seeded viable cells``),
viability at release (the last ``viability at release`` check), dose (the ``dose`` batch
value, with its unit), duration (first record to last, hours), deviations (every deviation
of the run from :func:`~cellauto.review.read.read_deviations`, runner's and raised by
people, except those withdrawn as raised in error) and *right first time*: the run ended
Complete with no deviation and, when it has a disposition, was released (there is one
disposition per run, so released is released at the first).

:func:`trend_table` lists the finished runs of a protocol in start order (a run that has
not ended has no dose yet and is left out). Simulated batches are kept apart from real
ones (:func:`select_batches`): a protocol's trends use its real batches when it has any,
its simulated ones only when it has none, and both, marked, when asked
(``include_simulated``); the outputs say which. :func:`trend` puts one metric's values
against control limits: mean ± 3 sigma (sigma the sample standard deviation) over a *baseline*,
the first ``baseline`` batches with a value (default: all). A batch is *out of trend*
when its value is outside the limits, or when it is the 7th or later of 7 consecutive
values on one side of the mean. That second test is Nelson's rule 2 with a run length of
7, as many pharmaceutical trending SOPs and the AIAG SPC manual use it; Nelson's paper
uses 9 (``run_length=9`` gives it). A value equal to the mean ends a run. For deviations
per batch only a rise is a signal (above the upper limit, or a run above the mean): a
run of clean batches below the mean is not out of trend.

The tables are read as indexes, not confirmed record by record: trends inform a
reviewer, they release nothing (``cellauto verify`` confirms the tables). The CSV and
HTML outputs are in :mod:`cellauto.review.trends_out`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from cellauto.errors import BadInputError, RunNotFoundError
from cellauto.records import Journal, _summary
from cellauto.records.backend import Conn
from cellauto.records.models import RunSummary, utc_from_epoch_s
from cellauto.review.read import read_deviations, read_disposition

__all__ = [
    "METRICS",
    "RUN_LENGTH",
    "BatchMetrics",
    "ControlLimits",
    "Metric",
    "Selection",
    "Trend",
    "TrendPoint",
    "batch_metrics",
    "control_limits",
    "out_of_trend",
    "select_batches",
    "trend",
    "trend_selections",
    "trend_table",
    "trend_tables",
]

RUN_LENGTH = 7
"""Consecutive values on one side of the mean that make the last of them out of trend."""

COMPLETE = "complete"
RELEASED = "released"


@dataclass(frozen=True)
class BatchMetrics:
    """One batch's figures for trending."""

    run_id: str
    protocol: str
    protocol_version: str
    started: datetime
    """The run's start (process clock, UTC)."""
    batch: str | None
    """The batch's DIN (or COI) parameter, when the protocol has one."""
    exit_status: str
    fold_expansion: float | None
    viability_at_release_pct: float | None
    dose: float | None
    dose_unit: str
    duration_h: float
    deviations: int
    disposition: str | None
    """released | rejected | None (not disposed)"""
    right_first_time: bool
    simulated: bool = False
    """A simulated batch (``run_started.simulated``): kept apart from real ones."""


@dataclass(frozen=True)
class Selection:
    """A protocol's batches as trended, and the simulated ones left out."""

    batches: list[BatchMetrics]
    simulated_left_out: int = 0

    @property
    def basis(self) -> str:
        """real | simulated (the protocol has no real batch) | mixed (asked for)."""
        kinds = {b.simulated for b in self.batches}
        if kinds == {True}:
            return "simulated"
        return "mixed" if kinds == {True, False} else "real"

    def describe(self) -> str:
        """The selection in words, for trends.html and the command's output."""
        if self.basis == "simulated":
            return "simulated batches only: the protocol has no real batch"
        if self.basis == "mixed":
            return "real and simulated batches mixed (--include-simulated); simulated ones marked"
        left = self.simulated_left_out
        return "real batches only" + (
            f"; {left} simulated batch{'es' if left != 1 else ''} left out"
            " (--include-simulated mixes them in)"
            if left
            else ""
        )


def select_batches(
    batches: Sequence[BatchMetrics], *, include_simulated: bool = False
) -> Selection:
    """A protocol's real batches when it has any (its simulated ones left out and counted),
    else its simulated ones; every batch with ``include_simulated``."""
    real = [b for b in batches if not b.simulated]
    if include_simulated or not real:
        return Selection(list(batches))
    return Selection(real, len(batches) - len(real))


@dataclass(frozen=True)
class Metric:
    """A trended metric: its attribute of :class:`BatchMetrics`, title and unit."""

    key: str
    title: str
    unit: str
    upper_only: bool = False
    """Only a rise is a signal (a count of bad events: below the mean is better, and
    seven clean batches in a row are not out of trend)."""

    def value(self, batch: BatchMetrics) -> float | None:
        found = getattr(batch, self.key)
        return None if found is None else float(found)


METRICS: tuple[Metric, ...] = (
    Metric("fold_expansion", "fold expansion", ""),
    Metric("viability_at_release_pct", "viability at release", "%"),
    Metric("dose", "dose", ""),
    Metric("duration_h", "duration", "h"),
    Metric("deviations", "deviations per batch", "", upper_only=True),
)


def _conn(source: Journal | Conn) -> Conn:
    return source.read_connection() if isinstance(source, Journal) else source


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _payloads(conn: Conn, run_id: str) -> dict[str, list[dict[str, Any]]]:
    """The run's ``run_started`` (seq 0), ``batch_value`` and ``check_result`` payloads by
    kind, in seq order: one pass over the run's rows (the ``(run_id, seq)`` index)."""
    found: dict[str, list[dict[str, Any]]] = {"run_started": [], _VALUE: [], _CHECK: []}
    rows = conn.execute(
        "SELECT seq, kind, body FROM records WHERE run_id = ? AND seq = 0 UNION ALL "
        "SELECT seq, kind, body FROM records WHERE run_id = ? AND kind IN (?, ?) ORDER BY 1",
        (run_id, run_id, _VALUE, _CHECK),
    ).fetchall()
    for _, kind, body in rows:
        if kind in found:
            found[kind].append(orjson.loads(body)["payload"])
    return found


_VALUE, _CHECK = "batch_value", "check_result"


def _metrics(conn: Conn, summary: RunSummary) -> BatchMetrics:
    run_id = summary.run_id
    payloads = _payloads(conn, run_id)
    values: dict[str, object] = {}
    units: dict[str, str] = {}
    for payload in payloads[_VALUE]:
        name = str(payload["name"])
        values[name] = payload.get("value")
        units[name] = str(payload.get("unit") or "")
    fold = _number(values.get("fold expansion"))
    harvest, seeded = (
        _number(values.get(k)) for k in ("harvest viable cells", "seeded viable cells")
    )
    if fold is None and harvest is not None and seeded:
        fold = harvest / seeded
    viability = None
    for payload in payloads[_CHECK]:
        if payload.get("check") == "viability at release":
            viability = _number(payload.get("value"))
    started = payloads["run_started"]
    params = started[0].get("parameters", {}) if started else {}
    simulated = bool(started[0].get("simulated", False)) if started else False
    batch = None
    if isinstance(params, dict):
        batch = next((str(params[k]) for k in ("din", "coi") if params.get(k)), None)
    deviations = sum(1 for d in read_deviations(conn, run_id=run_id) if d.status != "withdrawn")
    disposition = read_disposition(conn, run_id)
    decision = None if disposition is None else disposition.decision
    exit_status = summary.exit_status or ""
    return BatchMetrics(
        run_id=run_id,
        protocol=summary.protocol_name or "?",
        protocol_version=summary.protocol_version or "?",
        started=utc_from_epoch_s(summary.started_process_time_s),
        batch=batch,
        exit_status=exit_status,
        fold_expansion=fold,
        viability_at_release_pct=viability,
        dose=_number(values.get("dose")),
        dose_unit=units.get("dose", ""),
        duration_h=summary.duration_s / 3600,
        deviations=deviations,
        disposition=decision,
        right_first_time=(
            exit_status == COMPLETE and deviations == 0 and decision in (None, RELEASED)
        ),
        simulated=simulated,
    )


def batch_metrics(source: Journal | Conn, run_id: str) -> BatchMetrics:
    """The trended figures of one run."""
    conn = _conn(source)
    summary = _summary.summarize(conn, run_id)
    if summary is None:
        raise RunNotFoundError(f"no run {run_id!r} in the journal")
    return _metrics(conn, summary)


def trend_selections(
    source: Journal | Conn,
    protocol: str | None = None,
    *,
    include_simulated: bool = False,
) -> dict[str, Selection]:
    """The finished runs of each protocol (sorted; only ``protocol``'s when given, an
    empty dict when it has none) in start order, selected by :func:`select_batches`."""
    conn = _conn(source)
    summaries = [
        s
        for s in _summary.summarize_all(conn)
        if s.exit_status is not None and protocol in (None, s.protocol_name)
    ]
    summaries.sort(key=lambda s: (s.started_process_time_s, s.started_wall_time_ns, s.run_id))
    tables: dict[str, list[BatchMetrics]] = {}
    for summary in summaries:
        metrics = _metrics(conn, summary)
        tables.setdefault(metrics.protocol, []).append(metrics)
    return {
        name: select_batches(batches, include_simulated=include_simulated)
        for name, batches in sorted(tables.items())
    }


def trend_tables(
    source: Journal | Conn,
    protocol: str | None = None,
    *,
    include_simulated: bool = False,
) -> dict[str, list[BatchMetrics]]:
    """The trended batches of each protocol (:func:`trend_selections`)."""
    return {
        name: selection.batches
        for name, selection in trend_selections(
            source, protocol, include_simulated=include_simulated
        ).items()
    }


def trend_table(source: Journal | Conn, protocol: str) -> list[BatchMetrics]:
    """The metrics of every finished run of ``protocol``, in start order."""
    return trend_tables(source, protocol).get(protocol, [])


@dataclass(frozen=True)
class ControlLimits:
    """mean ± 3 sigma over the baseline's values."""

    mean: float
    sigma: float
    lower: float
    upper: float
    baseline: int
    """How many values the limits were computed from."""


def control_limits(
    values: Sequence[float | None], baseline: int | None = None
) -> ControlLimits | None:
    """Limits over the first ``baseline`` present values (all when None); None when fewer
    than two values are present (sigma needs two)."""
    if baseline is not None and baseline < 2:
        raise BadInputError(
            f"the baseline is {baseline} batches: control limits need at least 2 (sigma is the "
            "sample standard deviation); give --baseline 2 or more, or leave it out for all"
        )
    present = [v for v in values if v is not None]
    base = present if baseline is None else present[:baseline]
    if len(base) < 2:
        return None
    mean = math.fsum(base) / len(base)
    sigma = math.sqrt(math.fsum((v - mean) ** 2 for v in base) / (len(base) - 1))
    return ControlLimits(mean, sigma, mean - 3 * sigma, mean + 3 * sigma, len(base))


def out_of_trend(
    values: Sequence[float | None],
    limits: ControlLimits | None,
    run_length: int = RUN_LENGTH,
    *,
    upper_only: bool = False,
) -> list[str | None]:
    """Why each value is out of trend, or None; a missing value is neither in nor out
    and neither ends nor extends a run. ``upper_only``: only values above the upper limit
    and runs above the mean are signals."""
    reasons: list[str | None] = [None] * len(values)
    if limits is None:
        return reasons
    side, count = 0, 0
    for i, value in enumerate(values):
        if value is None:
            continue
        why = []
        if value > limits.upper:
            why.append("above the upper control limit (mean + 3 sigma)")
        elif value < limits.lower and not upper_only:
            why.append("below the lower control limit (mean - 3 sigma)")
        now = (value > limits.mean) - (value < limits.mean)
        count = count + 1 if now != 0 and now == side else (1 if now != 0 else 0)
        side = now
        if count >= run_length and not (upper_only and side < 0):
            where = "above" if side > 0 else "below"
            why.append(f"{count} consecutive values {where} the mean (Nelson rule 2)")
        reasons[i] = "; ".join(why) or None
    return reasons


@dataclass(frozen=True)
class TrendPoint:
    batch: BatchMetrics
    value: float | None
    out_of_trend: str | None


@dataclass(frozen=True)
class Trend:
    """One metric over a protocol's batches."""

    metric: Metric
    unit: str
    points: list[TrendPoint]
    limits: ControlLimits | None

    @property
    def flagged(self) -> list[TrendPoint]:
        return [p for p in self.points if p.out_of_trend]


def trend(batches: Sequence[BatchMetrics], metric: Metric, *, baseline: int | None = None) -> Trend:
    """``metric`` over ``batches`` with its limits and flags."""
    values = [metric.value(b) for b in batches]
    limits = control_limits(values, baseline)
    reasons = out_of_trend(values, limits, upper_only=metric.upper_only)
    unit = metric.unit
    if metric.key == "dose":
        unit = next((b.dose_unit for b in batches if b.dose_unit), "")
    points = [TrendPoint(b, v, r) for b, v, r in zip(batches, values, reasons, strict=True)]
    return Trend(metric, unit, points, limits)
