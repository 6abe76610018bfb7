"""Reading a LIMS export with its declared schema: pure, no writes.

CSV through :class:`csv.DictReader` (strict quoting, a UTF-8 byte order mark tolerated),
JSON through ``orjson`` (the rows at the schema's dotted ``rows_path``). Rows of another
batch (another, non-empty COI) are counted and otherwise left alone; every row of this
batch is mapped (test code, text values, units, date, status), and any problem refuses
the whole file, naming its row (CSV: header = row 1; JSON: index + 1) and column.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import orjson

from cellauto.errors import ReviewRefusedError
from cellauto.records.lims_schema import LimsSchema
from cellauto.records.release_plan import ReleasePlan

__all__ = ["MAX_BYTES", "LimsExport", "LimsFormatError", "LimsRow", "parse_export", "read_export"]

MAX_BYTES = 20 * 1024 * 1024
"""The largest LIMS export read (a batch's results are a few kB)."""


class LimsFormatError(ReviewRefusedError):
    """The file cannot be imported: ``row`` and ``column`` name where (0: the file)."""

    def __init__(self, file: str, row: int, column: str, detail: str, cause: str = "lims_format"):
        where = f"{file} row {row} column {column}" if row else f"{file}"
        super().__init__(f"{where}: {detail}; nothing was imported")
        self.file, self.row, self.column, self.detail, self.cause = file, row, column, detail, cause


@dataclass(frozen=True)
class LimsRow:
    """One result of this batch as the file holds it, mapped through the schema."""

    row: int
    sample_id: str
    coi: str
    din: str | None
    test: str
    value: float | None
    text: str | None
    unit: str
    method: str
    analyst: str
    tested_on: date
    instrument: str


@dataclass(frozen=True)
class LimsExport:
    """A file read: its rows of this batch, how many rows of others, and what it was."""

    name: str
    sha256: str
    size: int
    rows: list[LimsRow]
    ignored_rows: int


def read_export(path: Path) -> bytes:
    """The file's bytes, refused when missing or over :data:`MAX_BYTES`."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise LimsFormatError(path.name, 0, "", f"cannot be read: {exc.strerror}", "file") from None
    if size > MAX_BYTES:
        raise LimsFormatError(
            path.name, 0, "", f"{size} bytes is over the {MAX_BYTES}-byte limit", "file_too_large"
        )
    return path.read_bytes()


def _csv_rows(name: str, data: bytes, schema: LimsSchema) -> list[tuple[int, dict[str, Any]]]:
    encoding = (
        "utf-8-sig" if schema.encoding.lower().replace("_", "-") == "utf-8" else schema.encoding
    )
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise LimsFormatError(
            name, 0, "", f"is not {schema.encoding} text (byte {exc.start})", "encoding"
        ) from None
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=schema.delimiter, strict=True)
    try:
        header = reader.fieldnames or []
        needed = [c for c in schema.columns.model_dump().values() if c is not None]
        missing = [c for c in needed if c not in header]
        if missing:
            raise LimsFormatError(
                name,
                1,
                missing[0],
                f"no such column (header: {', '.join(header) or 'empty'}; delimiter"
                f" {schema.delimiter!r})",
            )
        rows: list[tuple[int, dict[str, Any]]] = []
        for row in reader:
            number = reader.line_num
            if None in row or any(v is None for v in row.values()):
                raise LimsFormatError(
                    name, number, "*", f"{len(header)} columns expected, the row has another count"
                )
            rows.append((number, row))
    except csv.Error as exc:
        raise LimsFormatError(name, reader.line_num, "*", f"not CSV: {exc}") from None
    return rows


def _json_rows(name: str, data: bytes, schema: LimsSchema) -> list[tuple[int, dict[str, Any]]]:
    try:
        found: Any = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise LimsFormatError(name, 0, "", f"is not JSON: {exc}", "encoding") from None
    for key in [k for k in schema.rows_path.split(".") if k]:
        if not isinstance(found, dict) or key not in found:
            raise LimsFormatError(
                name, 0, schema.rows_path, f"rows_path {schema.rows_path!r}: no key {key!r}"
            )
        found = found[key]
    if not isinstance(found, list):
        raise LimsFormatError(name, 0, schema.rows_path, "rows_path does not name a list")
    rows: list[tuple[int, dict[str, Any]]] = []
    for index, row in enumerate(found, start=1):
        if not isinstance(row, dict):
            raise LimsFormatError(name, index, "*", "a row is not an object")
        rows.append((index, row))
    return rows


def _text(name: str, number: int, row: dict[str, Any], column: str | None) -> str | None:
    if column is None:
        return None
    if column not in row:
        raise LimsFormatError(name, number, column, "missing")
    value = row[column]
    return None if value is None else str(value).strip()


def _required(name: str, number: int, row: dict[str, Any], column: str) -> str:
    value = _text(name, number, row, column)
    if not value:
        raise LimsFormatError(name, number, column, "empty")
    return value


def _map_row(
    name: str, number: int, row: dict[str, Any], schema: LimsSchema, plan: ReleasePlan | None
) -> LimsRow:
    cols = schema.columns
    code = _required(name, number, row, cols.test)
    test = schema.tests.get(code)
    if test is None:
        raise LimsFormatError(
            name, number, cols.test, f"test code {code!r} is not in the schema's tests"
        )
    declared = plan.test(test) if plan is not None else None
    if plan is not None and declared is None:
        raise LimsFormatError(name, number, cols.test, f"{test!r} is not a release test of the run")
    status = _text(name, number, row, cols.status) or ""
    if status not in schema.accepted_status:
        raise LimsFormatError(
            name,
            number,
            cols.status,
            f"status {status!r} is not authorised ({', '.join(schema.accepted_status)}):"
            " only a result the LIMS authorised is imported",
        )
    raw = row.get(cols.value)
    if cols.value not in row or raw is None or str(raw).strip() == "":
        raise LimsFormatError(name, number, cols.value, "empty")
    shown = str(raw).strip()
    value: float | None = None
    text: str | None = schema.text_values.get(shown)
    qualitative = declared.qualitative if declared is not None else text is not None
    if qualitative and text is None:
        raise LimsFormatError(
            name, number, cols.value, f"{shown!r} is not in the schema's text_values ({test})"
        )
    if not qualitative:
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            value = float(raw)
        else:
            try:
                value = float(shown.replace(",", ".") if schema.decimal_comma else shown)
            except ValueError:
                raise LimsFormatError(
                    name,
                    number,
                    cols.value,
                    f"{shown!r} is not a number ({test} is numeric; map such values in the"
                    " schema's text_values only for qualitative tests)",
                ) from None
        text = None
    unit_raw = _text(name, number, row, cols.unit) or ""
    day = _required(name, number, row, cols.tested_on)
    try:
        tested_on = datetime.strptime(day, schema.date_format).date()
    except ValueError:
        raise LimsFormatError(
            name, number, cols.tested_on, f"{day!r} is not a date ({schema.date_format})"
        ) from None
    return LimsRow(
        row=number,
        sample_id=_required(name, number, row, cols.sample_id),
        coi=_required(name, number, row, cols.coi),
        din=_text(name, number, row, cols.din) or None,
        test=test,
        value=value,
        text=text,
        unit=schema.units.get(unit_raw, unit_raw),
        method=_required(name, number, row, cols.method),
        analyst=_required(name, number, row, cols.analyst),
        tested_on=tested_on,
        instrument=_required(name, number, row, cols.instrument),
    )


def parse_export(
    path: Path,
    schema: LimsSchema,
    *,
    coi: str | None = None,
    plan: ReleasePlan | None = None,
    data: bytes | None = None,
) -> LimsExport:
    """The rows of batch ``coi`` (None: every row) mapped through ``schema``, checked
    against ``plan`` when given (a test's kind decides number or text); LimsFormatError
    naming row and column for any problem."""
    data = read_export(path) if data is None else data
    name = path.name
    raw = (_csv_rows if schema.format == "csv" else _json_rows)(name, data, schema)
    rows: list[LimsRow] = []
    ignored = 0
    seen: dict[str, int] = {}
    for number, row in raw:
        row_coi = _required(name, number, row, schema.columns.coi)
        if coi is not None and row_coi != coi:
            ignored += 1
            continue
        mapped = _map_row(name, number, row, schema, plan)
        if mapped.test in seen:
            raise LimsFormatError(
                name,
                number,
                schema.columns.test,
                f"{mapped.test} given twice for this batch (rows {seen[mapped.test]} and {number})",
            )
        seen[mapped.test] = number
        rows.append(mapped)
    return LimsExport(name, hashlib.sha256(data).hexdigest(), len(data), rows, ignored)
