"""The run journal: append-only, hash-chained records of every run, in one SQLite file.

A :class:`Journal` is one SQLite file in WAL mode (``synchronous=NORMAL``). Each run
writes through a :class:`RunJournal`, which numbers its records 0, 1, 2, ... and
chains them: every record's hash covers its body, and the body holds the previous
record's hash (see :mod:`cellauto.records.canonical`). Each run is also tied to the
journal's signed ledger (:mod:`cellauto.records.ledger`): a ``run_begun`` entry for
its record 0, an ``anchor`` every N records or M minutes, and on
:meth:`RunJournal.seal` a ``run_sealed`` entry with its last seq, head hash and wall
time, so that a deleted run, a cut tail, a deleted seal or a rewritten chain is
detected (:mod:`cellauto.records.verify`) by anyone without the signing key.

Signing key
    ``Journal(path, signing_key=...)`` takes a :class:`~cellauto.records.signing.Signer`
    or the path of a key file; by default the key is
    :func:`~cellauto.records.signing.default_key_path` (``$CELLAUTO_SIGNING_KEY``, else
    ``~/.config/cellauto/signing.key``), created on first use. It is loaded when a run
    is begun or resumed, never by a journal that is only read. A journal holds
    entries signed by one key: a writer with another key is refused.

Durability (group commit)
    ``append`` puts the record in an in-memory buffer shared by all runs of the
    journal. The buffer is written in one transaction (``executemany``) at a
    *flush*, which happens:

    a. at once, with an fsync, when ``append(..., durable=True)``: the commit uses
       ``PRAGMA synchronous=FULL`` (then back to NORMAL), so the record - and every
       record buffered before it - is on disk before ``append`` returns. Record an
       intended physical action (a pump start, a transfer) durably *before* doing
       it; if ``append`` raises, do not perform the action;
    b. at the end of the current event-loop tick: the first ``append`` in a tick,
       when an asyncio loop is running in this thread, schedules one
       ``loop.call_soon(flush)``. Records are on disk (in the WAL, without fsync)
       before any other callback or task runs, i.e. by the time the appending task
       has awaited anything;
    c. when the buffer holds 1,000 records;
    d. before every read (``records``, ``runs``, ``resolve_run_id``, verify,
       export), on ``seal`` (with an fsync) and on ``close``.

    The ledger entries due (see :mod:`cellauto.records.anchors`) are written in the
    same transaction as the records they cover, with one signature each and one
    for the ledger head: no record is ever signed on its own. ``close`` anchors
    every open run's unanchored tail.

    So a crash of the process can lose only the records appended in the loop tick
    in which it died, before any await; a crash of the machine (power loss) can
    also lose the WAL commits made since the last fsync, never a durable record.
    Without a running loop (scripts, the CLI) records stay buffered until one of
    (a), (c) or (d).

    A failed flush raises :class:`~cellauto.errors.JournalError` and keeps the
    buffered records, in order, to be written by the next flush; a failed
    end-of-tick flush is logged (it cannot raise into the loop) and the next
    append in a later tick schedules another. Nothing already appended is dropped.

A journal is used from one thread (the event loop's).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from asyncio import AbstractEventLoop
from asyncio import _get_running_loop as _running_loop
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from cellauto.errors import JournalError, RunNotFoundError, SigningKeyError
from cellauto.records import _sqlite, _summary
from cellauto.records.anchors import AnchorSchedule
from cellauto.records.kinds import GENESIS_HASH, RecordKind, kind_value
from cellauto.records.ledger import AnchorPolicy, LedgerEvent, LedgerKind, LedgerWriter
from cellauto.records.models import Record, RunSummary
from cellauto.records.run_journal import FLUSH_THRESHOLD, RunJournal
from cellauto.records.signing import Signer

__all__ = ["FLUSH_THRESHOLD", "AnchorPolicy", "Journal", "RunJournal"]

_log = logging.getLogger(__name__)
_Row = tuple[str, int, str, float, int, str, str, str]


class Journal:
    """One journal file holding the records of many runs.

    ``create=False`` refuses to create a missing file (read-only commands use it).
    ``timeout_s`` is how long a write waits for another connection's lock.
    ``signing_key`` (a :class:`Signer` or a key file path; default: see the module
    doc) signs the ledger; ``anchors`` sets how often running runs are anchored.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        create: bool = True,
        timeout_s: float = 5.0,
        signing_key: Signer | str | os.PathLike[str] | None = None,
        anchors: AnchorPolicy | None = None,
    ) -> None:
        self._path = Path(path)
        self._conn: sqlite3.Connection | None = _sqlite.connect(
            self._path, create=create, timeout_s=timeout_s
        )
        self._buffer: list[_Row] = []
        self._open_runs: dict[str, RunJournal] = {}
        self._tick_loop: AbstractEventLoop | None = None  # loop with a flush scheduled
        self._signing_key = signing_key
        self._ledger: LedgerWriter | None = None  # made by the first begin/resume
        self._schedule = AnchorSchedule(anchors or AnchorPolicy())
        self._run_count: int | None = None  # counted once, then kept by begin_run

    @property
    def path(self) -> Path:
        return self._path

    # -- writing ---------------------------------------------------------------

    def begin_run(
        self,
        run_id: str,
        process_clock: Callable[[], float],
        wall_clock_ns: Callable[[], int] | None = None,
    ) -> RunJournal:
        """Start the record of a new run; its first record gets seq 0."""
        if not isinstance(run_id, str) or not run_id:
            raise JournalError(f"run id must be a non-empty string, not {run_id!r}")
        conn = self._read()
        if run_id in self._open_runs or _sqlite.has_run(conn, run_id):
            raise JournalError(
                f"run {run_id!r} already has records in {self._path}; "
                "use resume_run to continue it, or start the run under a new id"
            )
        self._ledger_writer(conn)
        count = self.run_count()
        opened = self._open(run_id, process_clock, 0, GENESIS_HASH, wall_clock_ns, -1)
        self._run_count = count + 1
        return opened

    def resume_run(
        self,
        run_id: str,
        process_clock: Callable[[], float],
        wall_clock_ns: Callable[[], int] | None = None,
    ) -> RunJournal:
        """Continue the chain of an existing, unsealed run (e.g. after a crash)."""
        conn = self._read()
        if run_id in self._open_runs:
            raise JournalError(f"run {run_id!r} is already open for writing in this journal")
        if _sqlite.seal_of(conn, run_id) is not None:
            raise JournalError(f"run {run_id!r} is sealed; a sealed run takes no more records")
        last = _sqlite.edge_row(conn, run_id, last=True)
        if last is None:
            raise RunNotFoundError(f"no run {run_id!r} in {self._path}; nothing to resume")
        anchored = _sqlite.last_anchored_seq(conn, run_id)
        if anchored is None:
            raise JournalError(
                f"run {run_id!r} in {self._path} has no entry in the journal's ledger; run "
                "`cellauto verify` on the journal: its records were not written by cellauto "
                "or its ledger was changed"
            )
        self._ledger_writer(conn)
        return self._open(run_id, process_clock, last.seq + 1, last.hash, wall_clock_ns, anchored)

    def _open(
        self,
        run_id: str,
        clock: Callable[[], float],
        next_seq: int,
        head: str,
        wall_clock_ns: Callable[[], int] | None,
        anchored_seq: int,
    ) -> RunJournal:
        run = RunJournal(self, run_id, clock, next_seq, head, wall_clock_ns, anchored_seq)
        self._open_runs[run_id] = run
        return run

    def _ledger_writer(self, conn: sqlite3.Connection) -> LedgerWriter:
        """The ledger writer, loading the signing key on first use (before any write)."""
        if self._ledger is not None:
            return self._ledger
        key = self._signing_key
        signer = key if isinstance(key, Signer) else Signer.load_or_create(_key_path(key))
        stored = _sqlite.stored_public_key(conn)
        if stored is not None and stored != signer.public.hex:
            raise SigningKeyError(
                f"journal {self._path} is signed by another key than {signer.public.source} "
                f"(this key's fingerprint is {signer.public.fingerprint}); write to it with "
                "the key that signs it (CELLAUTO_SIGNING_KEY), or start a new journal"
            )
        self._ledger = LedgerWriter(_sqlite.last_ledger_row(conn), signer)
        return self._ledger

    def flush(self) -> None:
        """Write the buffered records now (one transaction, no fsync)."""
        self._commit(durable=False)

    def _commit(
        self, *, durable: bool, seal: LedgerEvent | None = None, anchor_all: bool = False
    ) -> None:
        conn = self._conn
        if conn is None:
            raise JournalError(f"journal {self._path} is closed")
        buffer = self._buffer
        if not buffer and seal is None and not anchor_all:
            return
        events = self._schedule.events(everything=anchor_all)
        if seal is not None:
            events.append(seal)
        if not buffer and not events:
            return
        ledger = self._ledger
        if events and ledger is None:  # unreachable: runs are begun through the ledger
            raise JournalError(f"journal {self._path}: ledger entries due but no signing key")
        prepared = ledger.prepare(events) if ledger is not None and events else None
        try:
            if durable:
                conn.execute("PRAGMA synchronous=FULL")
            try:
                conn.execute("BEGIN")
                conn.executemany(_sqlite.INSERT_RECORD, buffer)
                if prepared is not None and ledger is not None:
                    conn.executemany(_sqlite.INSERT_LEDGER, prepared.rows)
                    conn.execute(_sqlite.PUT_LEDGER_HEAD, prepared.head)
                    conn.execute(_sqlite.PUT_PUBLIC_KEY, (ledger.signer.public.hex,))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            finally:
                if durable:
                    conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            raise JournalError(
                f"cannot write {len(buffer)} records to journal {self._path}: {exc}; they are "
                "kept in memory and written by the next flush (check disk space and locks)"
            ) from exc
        buffer.clear()
        if prepared is not None and ledger is not None:
            ledger.committed(prepared)
            self._schedule.written(events, self._open_runs)

    def _tick_flush(self) -> None:
        self._tick_loop = None
        if self._conn is None or not self._buffer:
            return
        try:
            self.flush()
        except JournalError:
            _log.exception("end-of-tick journal flush failed; records stay buffered")

    def _after_append(self, durable: bool) -> None:
        if durable:
            self._commit(durable=True)
        elif len(self._buffer) >= FLUSH_THRESHOLD:
            self._commit(durable=False)
        else:
            loop = _running_loop()
            if loop is not None and loop is not self._tick_loop:
                self._tick_loop = loop
                loop.call_soon(self._tick_flush)

    def _sealed(self, run: RunJournal) -> None:
        conn = self._read()
        last = _sqlite.edge_row(conn, run.run_id, last=True)
        clock = run._wall_clock_ns
        now_ns = time.time_ns() if clock is None else clock()
        seal = LedgerEvent(
            LedgerKind.RUN_SEALED,
            run.run_id,
            run.next_seq - 1,
            run.head_hash,
            max(now_ns, last.wall_time_ns if last is not None else 0),
        )
        self._schedule.forget(run.run_id)
        try:
            self._commit(durable=True, seal=seal)
        except BaseException:
            run.anchor_watermark = run.anchored_seq  # the next append schedules it again
            raise
        del self._open_runs[run.run_id]

    # -- reading ---------------------------------------------------------------

    def _read(self) -> sqlite3.Connection:
        """Flush, then return the connection for a read (package-internal)."""
        self.flush()
        conn = self._conn
        if conn is None:  # unreachable: flush raises on a closed journal
            raise JournalError(f"journal {self._path} is closed")
        return conn

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

    # -- lifecycle -------------------------------------------------------------

    def close(self) -> None:
        """Flush and close. If the flush fails, the journal stays open (records kept)."""
        if self._conn is None:
            return
        self._commit(durable=False, anchor_all=True)
        self._conn.close()
        self._conn = None
        for run in self._open_runs.values():
            run._writable = False
        self._open_runs.clear()

    def abandon(self) -> None:
        """Close as a crashing process would: records not yet committed are lost.

        For crash tests (see ``Runner.resume``): what was committed stays, durable
        records always are; the runs still open take no more records.
        """
        conn, self._conn = self._conn, None
        self._buffer.clear()
        self._schedule.clear()
        for run in self._open_runs.values():
            run._writable = False
        self._open_runs.clear()
        if conn is not None:
            conn.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _key_path(key: str | os.PathLike[str] | None) -> Path | None:
    return None if key is None else Path(key)
