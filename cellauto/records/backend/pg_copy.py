"""The records insert on PostgreSQL: binary ``COPY`` (issue 15, §2.5).

Rows are the journal's ``(run_id, seq, kind, process_time_s, wall_time_ns, body,
prev_hash, hash)`` tuples, as SQLite's ``INSERT`` takes them; binary ``COPY`` was 2 to 3.6 times
``executemany`` of the same rows in the design's measurements.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import psycopg

__all__ = ["COPY_RECORDS", "RECORD_COLUMNS", "RECORD_TYPES", "copy_records"]

RECORD_COLUMNS = "run_id, seq, kind, process_time_s, wall_time_ns, body, prev_hash, hash"
COPY_RECORDS = f"COPY records ({RECORD_COLUMNS}) FROM STDIN (FORMAT BINARY)"
RECORD_TYPES = ("text", "int8", "text", "float8", "int8", "text", "text", "text")


def copy_records(raw: psycopg.Connection[Any], rows: Iterable[Sequence[object]]) -> None:
    """Insert ``rows`` into ``records`` on ``raw`` by binary ``COPY`` (psycopg errors raised
    as they are: the caller maps them)."""
    with raw.cursor() as cursor, cursor.copy(COPY_RECORDS) as copy:
        copy.set_types(list(RECORD_TYPES))
        for row in rows:
            copy.write_row(row)
