"""A run's measurements as one long table, and its batch values, for analysis.

:func:`measurements` walks every ``reading`` and every successful ``instrument_response``
of a run (counts, bioreactor process values, freezer temperatures, storage conditions,
cytometry, ...) and gives one :class:`Measurement` per numeric quantity in it, with its
unit from the field name (:mod:`cellauto.review.units`). A measurement's time is the
instrument's own time stamp when the value carries one (``process_time_s``,
``counted_at_process_time_s``, a logger item's ``time``), else the record's process time;
``record_seq`` points at the record it came from. Nested values are walked with dotted
names (``position.rack`` is not a quantity; a logger's list of readings gives one row per
item). Booleans, text and identifiers (:data:`~cellauto.review.units.NOT_QUANTITIES`) are
not measurements. Arguments of a query are not measurements either.

:func:`batch_values` gives the run's ``batch_value`` records typed: a number as float,
text as str, a list or mapping as its JSON text.

The writers (CSV, Parquet) are in :mod:`cellauto.review.measurements_io`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import orjson

from cellauto.errors import RunNotFoundError
from cellauto.records import Journal, Record
from cellauto.records import payloads as rec
from cellauto.records._sqlite import has_run, stored_rows
from cellauto.records.backend import Conn
from cellauto.records.kinds import RecordKind
from cellauto.records.models import utc_from_epoch_s
from cellauto.review.units import NOT_QUANTITIES, UnknownUnitError, is_timestamp, unit_of

__all__ = [
    "BatchValueRow",
    "Measurement",
    "batch_values",
    "batch_values_from_records",
    "measurements",
    "measurements_from_records",
    "run_records",
]

log = logging.getLogger(__name__)

Source = Journal | Conn


class Measurement(NamedTuple):
    """One numeric quantity an instrument reported."""

    utc_time: datetime
    """When it was measured (aware, UTC): the instrument's time stamp, else the record's."""
    process_time_s: float
    """The same instant on the process clock: seconds since the Unix epoch."""
    step: str | None
    instrument: str
    """The instrument's name in the line (``bioreactor``, ``counter``, ...)."""
    method: str
    """The query or command that returned it (``process_values``, ``count``, ...): a
    setpoint (``set_setpoints``) and a measured value share a quantity name."""
    quantity: str
    """The field name, dotted for a nested one (``temperature_c``)."""
    value: float
    unit: str
    record_seq: int
    """The seq of the run record it came from."""


class BatchValueRow(NamedTuple):
    """One ``batch_value`` record, typed."""

    name: str
    value: float | str | bool | None
    """A number as float; text as str; a list or mapping as its JSON text."""
    unit: str
    step: str | None
    record_seq: int
    utc_time: datetime
    """The record's process time."""


_KINDS = [RecordKind.READING.value, RecordKind.INSTRUMENT_RESPONSE.value]


def run_records(source: Source, run_id: str, kinds: Sequence[str] | None = None) -> list[Record]:
    """The run's records (of ``kinds``), from a journal or its read connection."""
    conn = source.read_connection() if isinstance(source, Journal) else source
    if not has_run(conn, run_id):
        raise RunNotFoundError(f"no run {run_id!r} in the journal")
    wanted = None if kinds is None else sorted(kinds)
    return [Record.from_row(run_id, row) for row in stored_rows(conn, run_id, wanted)]


def measurements(source: Source, run_id: str, *, strict: bool = False) -> list[Measurement]:
    """Every numeric quantity of every reading and instrument response of the run.

    ``strict``: a field with no known unit raises
    :class:`~cellauto.review.units.UnknownUnitError`; otherwise its rows get the unit
    ``""`` and a warning is logged naming the field.
    """
    return measurements_from_records(run_records(source, run_id, _KINDS), strict=strict)


def measurements_from_records(
    records: Iterable[Record], *, strict: bool = False
) -> list[Measurement]:
    """:func:`measurements` of records already read (a :class:`SimulatedRun`'s)."""
    found: list[Measurement] = []
    warned: set[str] = set()
    last_s, last_utc = math.nan, utc_from_epoch_s(0)  # one datetime per time stamp

    def unit(field: str) -> str:
        try:
            return unit_of(field)
        except UnknownUnitError:
            if strict:
                raise
            if field not in warned:
                warned.add(field)
                log.warning("no unit is known for the field %r; exported with no unit", field)
            return ""

    for record in records:
        payload = record.payload
        if isinstance(payload, rec.Reading):
            value = payload.value
        elif isinstance(payload, rec.InstrumentResponse) and payload.ok:
            value = payload.result
        else:
            continue
        for quantity, number, time_s in _numbers(value, payload.method, record.process_time_s):
            if time_s != last_s:
                last_s, last_utc = time_s, utc_from_epoch_s(time_s)
            found.append(
                Measurement(
                    utc_time=last_utc,
                    process_time_s=time_s,
                    step=payload.step,
                    instrument=payload.instrument,
                    method=payload.method,
                    quantity=quantity,
                    value=number,
                    unit=unit(quantity.rsplit(".", 1)[-1]),
                    record_seq=record.seq,
                )
            )
    return found


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _own_time(value: Mapping[str, Any], default_s: float) -> float:
    """The instrument's time stamp of a value: ``process_time_s``, ``*_at_process_time_s``
    or an ISO ``time``; else ``default_s``."""
    stamp = value.get("process_time_s")
    if isinstance(stamp, int | float) and not isinstance(stamp, bool):
        return float(stamp)
    for key, item in value.items():
        if key.endswith("_at_process_time_s") and _is_number(item):
            return float(item)
    text = value.get("time")
    if isinstance(text, str):
        try:
            return datetime.fromisoformat(text).timestamp()
        except ValueError:
            pass
    return default_s


def _numbers(value: Any, name: str, time_s: float) -> Iterator[tuple[str, float, float]]:
    """(quantity, value, time) of every number in ``value``; a bare number is ``name``."""
    if _is_number(value):
        yield name, float(value), time_s
    elif isinstance(value, Mapping):
        yield from _mapping(value, "", time_s)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, Mapping):
                yield from _mapping(item, "", time_s)


def _mapping(
    value: Mapping[str, Any], prefix: str, time_s: float
) -> Iterator[tuple[str, float, float]]:
    at = _own_time(value, time_s)
    for key, item in value.items():
        if key in NOT_QUANTITIES or is_timestamp(key) or isinstance(item, bool):
            continue
        name = prefix + key
        if _is_number(item):
            yield name, float(item), at
        elif isinstance(item, Mapping):
            yield from _mapping(item, name + ".", at)
        elif isinstance(item, list):
            for element in item:
                if _is_number(element):
                    yield name, float(element), at
                elif isinstance(element, Mapping):
                    yield from _mapping(element, name + ".", at)


def batch_values(source: Source, run_id: str) -> list[BatchValueRow]:
    """The run's batch values, in record order (a name recorded twice appears twice)."""
    return batch_values_from_records(run_records(source, run_id, [RecordKind.BATCH_VALUE.value]))


def batch_values_from_records(records: Iterable[Record]) -> list[BatchValueRow]:
    """:func:`batch_values` of records already read."""
    rows: list[BatchValueRow] = []
    for record in records:
        payload = record.payload
        if isinstance(payload, rec.BatchValue):
            rows.append(
                BatchValueRow(
                    name=payload.name,
                    value=_typed(payload.value),
                    unit=payload.unit,
                    step=payload.step,
                    record_seq=record.seq,
                    utc_time=record.process_time,
                )
            )
    return rows


def _typed(value: Any) -> float | str | bool | None:
    if value is None or isinstance(value, bool | str):
        return value
    if _is_number(value):
        return float(value)
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
