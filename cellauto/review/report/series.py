"""The plotted series of a run, taken from its records: cell counts (counter responses on
samples the bioreactor drew), culture readings (glucose, lactate, pH, DO, temperature) and
setpoints, the freeze curve and the profile the freezer was loaded with, storage
temperature; and the markers every plot carries (deviations, alarms, held intervals,
connection gaps).

Instruments are recognised by the interface their run recorded at start (``Bioreactor``,
``CellCounter``, ``ControlledRateFreezer``, ``CryoStorage``), never by their name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cellauto.records import payloads as rec
from cellauto.records.models import Record
from cellauto.review.report.model import Marker, Series

__all__ = ["SPEC_CHECKS", "build_series", "markers", "profile_curve", "reading_gaps"]

SPEC_CHECKS: dict[str, str] = {
    "culture temperature": "temperature_c",
    "glucose": "glucose",
    "viability at release": "viability_pct",
    "daily viability": "viability_pct",
    "storage temperature": "storage_c",
}
"""Checks whose specification is drawn on a plot: check name -> quantity (where two checks
draw one quantity, the one listed first wins: the release limit over the in-process one)."""
_RANK = {name: rank for rank, name in enumerate(SPEC_CHECKS)}

_HELD_FROM = frozenset({"Holding", "Held"})
_GAP_FACTOR = 3.0


def _interfaces(records: Sequence[Record]) -> dict[str, str]:
    for record in records:
        if isinstance(record.payload, rec.RunStarted):
            return {
                name: identity.interface or ""
                for name, identity in record.payload.instruments.items()
            }
    return {}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def profile_curve(profile: dict[str, Any], start_s: float) -> tuple[list[float], list[float]]:
    """The temperature a freezer profile asks for over time: its ramps and holds from
    ``start_temperature_c``, as (epoch seconds, °C) corner points."""
    temperature = _number(profile.get("start_temperature_c"))
    if temperature is None:
        return [], []
    times, values = [start_s], [temperature]
    now = start_s
    for segment in profile.get("segments", []):
        if not isinstance(segment, dict):
            continue
        if segment.get("kind") == "hold":
            now += 60.0 * (_number(segment.get("duration_min")) or 0.0)
        else:
            end = _number(segment.get("end_temperature_c"))
            rate = _number(segment.get("rate_c_per_min"))
            if end is None or not rate:
                continue
            now += 60.0 * abs((end - temperature) / rate)
            temperature = end
        times.append(now)
        values.append(temperature)
    return times, values


def build_series(records: Sequence[Record]) -> Series:
    """Every plotted series of the run, with its markers and the drawn specifications."""
    interfaces = _interfaces(records)
    data: dict[str, Any] = {
        key: [] for key, field in Series.model_fields.items() if field.annotation == list[float]
    }
    culture_samples: set[str] = set()
    specs: dict[str, tuple[float | None, float | None]] = {}
    drawn_by: dict[str, str] = {}
    phase_change: float | None = None
    profile: dict[str, Any] | None = None
    freezer_start: float | None = None
    for record in records:
        p = record.payload
        t = record.process_time_s
        if isinstance(p, rec.CheckResult):
            quantity = SPEC_CHECKS.get(p.check)
            if quantity is not None and _RANK[p.check] <= _RANK[drawn_by.get(quantity, p.check)]:
                specs[quantity] = (p.spec.min, p.spec.max)
                drawn_by[quantity] = p.check
            continue
        if not isinstance(p, rec.Reading | rec.InstrumentResponse | rec.InstrumentCommand):
            continue
        interface = interfaces.get(p.instrument, "")
        if interface == "Bioreactor":
            _bioreactor(p, t, data, culture_samples)
        elif interface == "CellCounter" and isinstance(p, rec.InstrumentResponse):
            _count(p, t, data, culture_samples)
        elif interface == "ControlledRateFreezer":
            if isinstance(p, rec.InstrumentCommand) and p.method == "load_profile":
                loaded = p.arguments.get("profile")
                profile = loaded if isinstance(loaded, dict) else None
            elif isinstance(p, rec.InstrumentCommand) and p.method == "start":
                freezer_start = t
            elif isinstance(p, rec.Reading) and isinstance(p.value, dict):
                if p.method == "temperatures":
                    _append(data, "freeze_t", t, chamber_c=p.value, sample_c=p.value)
                elif p.method == "result":
                    phase_change = _number(p.value.get("phase_change_process_time_s"))
        elif (
            interface == "CryoStorage"
            and isinstance(p, rec.Reading)
            and p.method == "conditions"
            and isinstance(p.value, dict)
        ):
            value = _number(p.value.get("temperature_c"))
            if value is not None:
                data["storage_t"].append(t)
                data["storage_c"].append(value)
    if profile is not None and freezer_start is not None:
        data["profile_t"], data["profile_c"] = profile_curve(profile, freezer_start)
    start = records[0].process_time_s if records else 0.0
    return Series(
        start_s=start,
        phase_change_s=phase_change,
        specs=specs,
        markers=markers(records),
        **data,
    )


_READING_KEYS = {
    "chamber_c": "chamber_temperature_c",
    "sample_c": "sample_temperature_c",
}


def _append(data: dict[str, Any], time_key: str, t: float, **columns: dict[str, Any]) -> None:
    values = {
        column: _number(source.get(_READING_KEYS.get(column, column)))
        for column, source in columns.items()
    }
    if any(v is None for v in values.values()):
        return
    data[time_key].append(t)
    for column, value in values.items():
        data[column].append(value)


def _bioreactor(
    p: rec.Reading | rec.InstrumentResponse | rec.InstrumentCommand,
    t: float,
    data: dict[str, Any],
    culture_samples: set[str],
) -> None:
    if isinstance(p, rec.Reading) and isinstance(p.value, dict):
        if p.method in ("process_values", "read_process_values"):
            v = p.value
            _append(
                data,
                "culture_t",
                t,
                glucose_mmol_per_l=v,
                lactate_mmol_per_l=v,
                ph=v,
                dissolved_oxygen_pct=v,
                temperature_c=v,
            )
    elif isinstance(p, rec.InstrumentCommand) and p.method == "set_setpoints":
        sp = p.arguments.get("setpoints")
        if isinstance(sp, dict):
            values = [_number(sp.get(k)) for k in ("ph", "dissolved_oxygen_pct", "temperature_c")]
            if all(v is not None for v in values):
                data["setpoints_t"].append(t)
                for key, value in zip(
                    ("setpoint_ph", "setpoint_do_pct", "setpoint_temperature_c"),
                    values,
                    strict=True,
                ):
                    data[key].append(value)
    elif (
        isinstance(p, rec.InstrumentResponse)
        and p.ok
        and p.method == "draw_sample"
        and isinstance(p.result, dict)
        and isinstance(p.result.get("sample_id"), str)
    ):
        culture_samples.add(p.result["sample_id"])


def _count(
    p: rec.InstrumentResponse, t: float, data: dict[str, Any], culture_samples: set[str]
) -> None:
    result = p.result
    if not (p.ok and p.method == "count" and isinstance(result, dict)):
        return
    if result.get("sample_id") not in culture_samples:
        return  # a count of the apheresis bag, the wash output, …: not the culture
    vcd = _number(result.get("viable_cells_per_ml"))
    viability = _number(result.get("viability_pct"))
    counted = _number(result.get("counted_at_process_time_s"))
    if vcd is None or viability is None:
        return
    data["counts_t"].append(counted if counted is not None else t)
    data["viable_cells_per_ml"].append(vcd)
    data["viability_pct"].append(viability)


def markers(records: Sequence[Record]) -> list[Marker]:
    """Deviations (labelled with their id), alarms, held intervals and connection gaps."""
    from cellauto.review.ids import runner_deviation_id

    found: list[Marker] = []
    ordinal = 0
    held_since: float | None = None
    for record in records:
        p = record.payload
        t = record.process_time_s
        if isinstance(p, rec.Deviation):
            ordinal += 1
            found.append(
                Marker(
                    kind="deviation", label=runner_deviation_id(record.run_id, ordinal), start_s=t
                )
            )
        elif isinstance(p, rec.Alarm):
            found.append(Marker(kind="alarm", label=f"alarm r{record.seq}", start_s=t))
            if p.gap_started_process_time_s is not None:
                found.append(
                    Marker(
                        kind="gap",
                        label=f"connection gap r{record.seq}",
                        start_s=p.gap_started_process_time_s,
                        end_s=p.gap_ended_process_time_s or t,
                    )
                )
        elif isinstance(p, rec.StateChange):
            if p.to_state in _HELD_FROM and held_since is None:
                held_since = t
            elif p.to_state not in _HELD_FROM and held_since is not None:
                found.append(Marker(kind="held", label="held", start_s=held_since, end_s=t))
                held_since = None
    if held_since is not None and records:
        found.append(
            Marker(kind="held", label="held", start_s=held_since, end_s=records[-1].process_time_s)
        )
    return found


def reading_gaps(records: Sequence[Record]) -> list[tuple[Record, Record]]:
    """Consecutive readings of one streamed quantity (a reading with ``interval_s``) more
    than three intervals apart: (the reading before the gap, the one after)."""
    last: dict[tuple[str, str], Record] = {}
    gaps: list[tuple[Record, Record]] = []
    for record in records:
        p = record.payload
        if not isinstance(p, rec.Reading):
            continue
        interval = _number(p.arguments.get("interval_s"))
        if not interval:
            continue
        key = (p.instrument, p.method)
        before = last.get(key)
        if before is not None and record.process_time_s - before.process_time_s > (
            _GAP_FACTOR * interval
        ):
            gaps.append((before, record))
        last[key] = record
    return gaps
