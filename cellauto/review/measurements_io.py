"""Write measurements and batch values as CSV (stdlib) or Parquet (pyarrow).

CSV: one header row; times as ISO 8601 UTC with ``Z``; an empty cell for a missing step.
Parquet: typed columns (``utc_time`` a UTC timestamp in µs, numbers float64, seqs int64)
with the units in the field metadata (``unit``: the unit of a column whose unit is
fixed; for the long table's ``value`` column, ``units``: a JSON map of quantity → unit,
because each row carries its own unit in the ``unit`` column), and ``run_id`` and the
cellauto version in the schema metadata. pyarrow comes with ``cellauto[analysis]`` and is
imported only here, when a Parquet file is written.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from cellauto import __version__
from cellauto.review._optional import analysis_module
from cellauto.review.measurements import BatchValueRow, Measurement

__all__ = [
    "BATCH_VALUE_COLUMNS",
    "MEASUREMENT_COLUMNS",
    "batch_values_table",
    "measurements_table",
    "write_batch_values_csv",
    "write_batch_values_parquet",
    "write_measurements_csv",
    "write_measurements_parquet",
]

MEASUREMENT_COLUMNS = Measurement._fields
BATCH_VALUE_COLUMNS = BatchValueRow._fields


def _iso(when: datetime) -> str:
    return when.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, float):
        return repr(value)  # round-trips exactly
    return value


def _write_csv(rows: Sequence[tuple[Any, ...]], columns: Sequence[str], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(columns)
        writer.writerows([_cell(v) for v in row] for row in rows)
    return path


def write_measurements_csv(rows: Sequence[Measurement], path: Path) -> Path:
    """Write the long measurements table to ``path`` (CSV)."""
    return _write_csv(rows, MEASUREMENT_COLUMNS, path)


def write_batch_values_csv(rows: Sequence[BatchValueRow], path: Path) -> Path:
    """Write the batch values to ``path`` (CSV)."""
    return _write_csv(rows, BATCH_VALUE_COLUMNS, path)


def _meta(**items: str) -> dict[bytes, bytes]:
    return {key.encode(): value.encode() for key, value in items.items()}


def measurements_table(rows: Sequence[Measurement], run_id: str) -> Any:
    """The long table as a ``pyarrow.Table`` (typed, units in the field metadata)."""
    pa = analysis_module("pyarrow")
    units = {m.quantity: m.unit for m in rows}
    schema = pa.schema(
        [
            pa.field("utc_time", pa.timestamp("us", tz="UTC"), False, _meta(unit="UTC")),
            pa.field(
                "process_time_s",
                pa.float64(),
                False,
                _meta(unit="s", description="process clock, seconds since the Unix epoch"),
            ),
            pa.field("step", pa.string(), True),
            pa.field("instrument", pa.string(), False),
            pa.field("method", pa.string(), False),
            pa.field("quantity", pa.string(), False),
            pa.field(
                "value",
                pa.float64(),
                False,
                _meta(units=orjson.dumps(units, option=orjson.OPT_SORT_KEYS).decode()),
            ),
            pa.field("unit", pa.string(), False),
            pa.field("record_seq", pa.int64(), False, _meta(description="run record seq")),
        ],
        metadata=_meta(run_id=run_id, producer=f"cellauto {__version__}"),
    )
    columns: list[list[Any]] = [[row[i] for row in rows] for i in range(len(MEASUREMENT_COLUMNS))]
    return pa.Table.from_arrays(
        [pa.array(c, type=f.type) for c, f in zip(columns, schema, strict=True)],
        schema=schema,
    )


def batch_values_table(rows: Sequence[BatchValueRow], run_id: str) -> Any:
    """The batch values as a ``pyarrow.Table``: a number in ``value`` (float64), anything
    else in ``text`` (a bool as ``true``/``false``), each row's unit in ``unit``."""
    pa = analysis_module("pyarrow")
    units = {r.name: r.unit for r in rows}
    schema = pa.schema(
        [
            pa.field("name", pa.string(), False),
            pa.field(
                "value",
                pa.float64(),
                True,
                _meta(units=orjson.dumps(units, option=orjson.OPT_SORT_KEYS).decode()),
            ),
            pa.field("text", pa.string(), True),
            pa.field("unit", pa.string(), False),
            pa.field("step", pa.string(), True),
            pa.field("record_seq", pa.int64(), False, _meta(description="run record seq")),
            pa.field("utc_time", pa.timestamp("us", tz="UTC"), False, _meta(unit="UTC")),
        ],
        metadata=_meta(run_id=run_id, producer=f"cellauto {__version__}"),
    )

    def number(v: object) -> float | None:
        return v if isinstance(v, float) else None

    def text(v: object) -> str | None:
        if isinstance(v, bool):
            return "true" if v else "false"
        return v if isinstance(v, str) else None

    arrays = [
        [r.name for r in rows],
        [number(r.value) for r in rows],
        [text(r.value) for r in rows],
        [r.unit for r in rows],
        [r.step for r in rows],
        [r.record_seq for r in rows],
        [r.utc_time for r in rows],
    ]
    return pa.Table.from_arrays(
        [pa.array(a, type=f.type) for a, f in zip(arrays, schema, strict=True)], schema=schema
    )


def _write_parquet(table: Any, path: Path) -> Path:
    pq = analysis_module("pyarrow.parquet")
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def write_measurements_parquet(rows: Sequence[Measurement], path: Path, run_id: str) -> Path:
    """Write the long measurements table to ``path`` (Parquet)."""
    return _write_parquet(measurements_table(rows, run_id), path)


def write_batch_values_parquet(rows: Sequence[BatchValueRow], path: Path, run_id: str) -> Path:
    """Write the batch values to ``path`` (Parquet)."""
    return _write_parquet(batch_values_table(rows, run_id), path)
