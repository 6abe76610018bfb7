"""The records insert on PostgreSQL: binary ``COPY`` (issue 15, §2.5).

Rows are the journal's ``(run_id, seq, kind, process_time_s, wall_time_ns, body,
prev_hash, hash)`` tuples, as SQLite's ``INSERT`` takes them; binary ``COPY`` was 2 to 3.6 times
``executemany`` of the same rows in the design's measurements.

The rows of one insert are encoded first and sent in blocks of up to ``SEND_BYTES``
(:class:`GatheredWriter`): psycopg's own writer sends every 32 KiB as it goes, and each
send lets go of the GIL, which the journal's writer thread then has to wait for while the
event loop's thread appends (up to the interpreter's switch interval, 5 ms): the writer
fell behind the loop and the final flush waited for it (``bench/bench_journal_pg.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg.copy import LibpqWriter

__all__ = [
    "COPY_RECORDS",
    "RECORD_COLUMNS",
    "RECORD_TYPES",
    "SEND_BYTES",
    "GatheredWriter",
    "copy_records",
]

RECORD_COLUMNS = "run_id, seq, kind, process_time_s, wall_time_ns, body, prev_hash, hash"
COPY_RECORDS = f"COPY records ({RECORD_COLUMNS}) FROM STDIN (FORMAT BINARY)"
RECORD_TYPES = ("text", "int8", "text", "float8", "int8", "text", "text", "text")
SEND_BYTES = 8 * 1024 * 1024
"""The most encoded ``COPY`` data kept before it is sent (~20,000 journal rows): a commit
after a long outage holds every record buffered meanwhile, and is not copied whole."""


class GatheredWriter(LibpqWriter):
    """A ``COPY`` writer that keeps the encoded data until ``SEND_BYTES`` or the copy's
    end, then sends it (in psycopg's largest chunks, 128 KiB): no network call, hence no
    release of the GIL, between rows."""

    def __init__(self, cursor: psycopg.Cursor[Any], send_bytes: int | None = None) -> None:
        super().__init__(cursor)
        self._parts: list[Any] = []
        self._size = 0
        self._send_bytes = SEND_BYTES if send_bytes is None else send_bytes
        self.sends = 0
        """How many times the data was handed to the network layer (for the tests)."""

    def write(self, data: Any) -> None:
        self._parts.append(data)
        self._size += len(data)
        if self._size >= self._send_bytes:
            self._send()

    def _send(self) -> None:
        data = b"".join(self._parts)
        self._parts.clear()
        self._size = 0
        self.sends += 1
        super().write(data)

    def finish(self, exc: BaseException | None = None) -> None:
        if exc is None and self._parts:
            self._send()
        self._parts.clear()
        super().finish(exc)


def copy_records(raw: psycopg.Connection[Any], rows: Iterable[Sequence[object]]) -> None:
    """Insert ``rows`` into ``records`` on ``raw`` by binary ``COPY`` (psycopg errors raised
    as they are: the caller maps them)."""
    with (
        raw.cursor() as cursor,
        cursor.copy(COPY_RECORDS, writer=GatheredWriter(cursor)) as copy,
    ):
        copy.set_types(list(RECORD_TYPES))
        write_row = copy.write_row
        for row in rows:
            write_row(row)
