"""The records of the runs whose pages are open, kept between requests.

A run page refetches its run on every live event; reading and parsing every record of
a long run each time would cost more than the page's whole work. Records are
append-only, so the cache reads only the rows after the last it holds (one indexed
query) and appends them. An entry nobody asked for in :data:`KEEP_S` seconds is
dropped at the next request, and at most :data:`MAX_RUNS` runs are kept. Keys are
(journal file, run id): two journals may hold runs of the same id (a copy of a file).

Thread-safe: requests read on the read pool's worker threads; each call returns a list
of its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cellauto.records import Journal
from cellauto.records._sqlite import rows_after
from cellauto.records.models import Record

__all__ = ["KEEP_S", "MAX_RUNS", "RunRecordsCache"]

KEEP_S = 60.0
MAX_RUNS = 32
"""At most this many runs are kept (the least recently asked for goes first): a person
opening every run's page one after the other must not hold the whole journal in memory."""


@dataclass
class _Entry:
    records: list[Record] = field(default_factory=list)
    used: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


class RunRecordsCache:
    """Every record of a run, read once and then only what is new."""

    def __init__(
        self,
        keep_s: float = KEEP_S,
        clock: Callable[[], float] = time.monotonic,
        max_runs: int = MAX_RUNS,
    ):
        self._keep_s = keep_s
        self._max_runs = max_runs
        self._clock = clock
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def records(self, journal: Journal, run_id: str) -> list[Record]:
        """The run's records up to the last committed (RunNotFoundError: no such run)."""
        now = self._clock()
        key = (str(journal.location), run_id)
        with self._lock:
            for stale in [k for k, e in self._entries.items() if now - e.used > self._keep_s]:
                del self._entries[stale]
            entry = self._entries.setdefault(key, _Entry())
            entry.used = now
            while len(self._entries) > self._max_runs:
                oldest = min(self._entries, key=lambda k: self._entries[k].used)
                del self._entries[oldest]
        with entry.lock:
            if not entry.records:
                try:
                    entry.records = journal.records(run_id)
                except Exception:  # no such run (or the file is unreadable): keep nothing
                    with self._lock:
                        self._entries.pop(key, None)
                    raise
            else:
                conn = journal.read_connection()
                last = entry.records[-1].seq
                entry.records += [
                    Record.from_row(run_id, row) for row in rows_after(conn, run_id, last)
                ]
            found = list(entry.records)
        if not found:
            with self._lock:
                self._entries.pop(key, None)
        return found
