"""The reading side of a :class:`~cellauto.records.Journal`: its runs and their records.

Every read first waits until everything appended before it is committed (see the
durability rules in :mod:`cellauto.records.journal`). :class:`JournalReading` is a
base class of :class:`~cellauto.records.Journal`.
"""

from __future__ import annotations

from cellauto.errors import JournalError, RunNotFoundError
from cellauto.records import _sqlite, _summary
from cellauto.records._handoff import WriterHandoff
from cellauto.records.backend import Conn
from cellauto.records.kinds import RecordKind, kind_value
from cellauto.records.models import Record, RunSummary

__all__ = ["JournalReading"]


class JournalReading(WriterHandoff):
    """Reads of the journal file (a base of ``Journal``)."""

    _run_count: int | None  # counted once, then kept by begin_run

    def _read(self) -> Conn:
        """Flush, then return the connection for a read (package-internal)."""
        self.flush()
        conn = self._conn
        if conn is None:  # unreachable: flush raises on a closed journal
            raise JournalError(f"journal {self._path} is closed")
        return conn

    def read_connection(self) -> Conn:
        """The journal's own connection, for a read-only query of its tables (an index
        such as ``containers``); never write through it."""
        return self._read()

    def runs(self) -> list[RunSummary]:
        """Every run in the journal, ordered by start."""
        return _summary.summarize_all(self._read())

    def run_count(self) -> int:
        """How many runs the journal holds (begun in this process or before).

        Counted once (one index seek per run), then kept up to date by
        :meth:`begin_run`, so a reproducible run id costs O(1) however many runs there are.
        """
        if self._run_count is None:
            self._run_count = sum(1 for _ in _sqlite.run_ids(self._read()))
        return self._run_count

    def resolve_run_id(self, prefix: str) -> str:
        """Return the run id equal to ``prefix``, or the only one starting with it."""
        conn = self._read()
        if not prefix:
            raise RunNotFoundError("empty run id; give a run id or a unique prefix of one")
        candidates: list[str] = []
        for run_id in _sqlite.run_ids(conn, prefix):
            if run_id == prefix:
                return run_id
            candidates.append(run_id)
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            raise RunNotFoundError(f"no run id starts with {prefix!r} in {self._path}")
        shown = ", ".join(candidates[:10]) + (", ..." if len(candidates) > 10 else "")
        raise RunNotFoundError(
            f"run id prefix {prefix!r} is ambiguous: {len(candidates)} runs match "
            f"({shown}); give more characters"
        )

    def records(self, run_id: str, kinds: set[RecordKind] | None = None) -> list[Record]:
        """A run's records in seq order, optionally only those of the given kinds."""
        conn = self._read()
        if not _sqlite.has_run(conn, run_id):
            raise RunNotFoundError(f"no run {run_id!r} in {self._path}")
        wanted = None if kinds is None else sorted(kind_value(k) for k in kinds)
        return [Record.from_row(run_id, row) for row in _sqlite.stored_rows(conn, run_id, wanted)]
