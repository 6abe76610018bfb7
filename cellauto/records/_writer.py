"""The journal's writer thread: every commit of a :class:`~cellauto.records.Journal`.

The event loop's thread only hands batches over (:meth:`Writer.submit`, a lock and a
list append); this thread writes them with its own SQLite connection, so that SQLite
work (B-tree inserts, page writes, fsync, ledger signatures) runs beside the loop, on
the second core, with the GIL released during I/O.

Commit window
    A batch that nobody waits for opens a window of ``window_s`` (a few ms): the
    commit happens when it closes, or at once when an *urgent* batch arrives (a
    durable append, a flush, a read, a seal, close). Every batch pending at that
    moment goes in one transaction, in the order submitted.

Group fsync
    If any of those batches is durable, the commit runs under
    ``PRAGMA synchronous=FULL``: one fsync of the WAL covers every batch of the
    commit and all earlier commits. Durable batches that arrive while an fsync is
    under way are committed together by the next one.

Ownership (the fence)
    Every commit takes the write lock first and, in the same transaction, leaves out
    the rows of runs another controller has taken over (:mod:`._fence`); it also
    carries the releases of runs that ended and, every few real seconds, the
    heartbeat of the runs held (a transaction of its own when the writer is idle).

Live changes
    On PostgreSQL a commit that adds records (or runs ops) notifies ``cellauto_changes``
    in its transaction with each run's first and last seq (:mod:`.backend.notify`), so
    that readers read exactly those rows once the commit is visible.

Transaction operations
    A batch may carry ops (:mod:`._txops`: site records, task rows) that run inside
    the commit after the fence, each in its own savepoint, before the ledger entries
    are signed; their ledger entries are signed with the commit's.

Failures
    A failed commit keeps its batches, in order, at the head of the queue; every
    waiter of those batches is told (:class:`~cellauto.errors.JournalError`); the
    next submit (or flush) tries again. Nothing handed over is dropped, except by
    :meth:`Writer.abandon` (crash tests). Until a commit works again, the attempts
    nobody waits for (a heartbeat, a batch without a waiter) back off: the first
    after :data:`RETRY_FIRST_S`, each next one twice as late, at most
    :data:`RETRY_MAX_S` apart (a journal whose server is gone, or whose pool was
    closed, is not hammered); a durable append, a flush or a read still tries at
    once. The first failure of a streak is logged as an error saying what is retried
    and how often; the rest at debug level; the first commit that works again says so.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from cellauto.errors import JournalError
from cellauto.records import _sqlite
from cellauto.records import backend as db
from cellauto.records._fence import Fence
from cellauto.records._owners import RELEASE, Claim
from cellauto.records._txops import TxOp, apply_ops
from cellauto.records._waiters import AsyncWaiter, SyncWaiter, Waiter
from cellauto.records.backend import Conn, Lock
from cellauto.records.backend.notify import announce_changes, run_spans
from cellauto.records.ledger import LedgerEvent, LedgerWriter

__all__ = ["AsyncWaiter", "SyncWaiter", "Writer"]

_log = logging.getLogger("cellauto.records.journal")

RETRY_FIRST_S = 0.05
"""Real seconds before the first retry of a failed commit that nobody waits for."""
RETRY_MAX_S = 5.0
"""Real seconds at most between retries of failed commits that nobody waits for."""

Row = tuple[str, int, str, float, int, str, str, str]


class _Batch:
    __slots__ = ("durable", "events", "ledger", "ops", "releases", "results", "rows", "waiter")

    def __init__(
        self,
        rows: list[Row],
        events: list[LedgerEvent],
        ledger: LedgerWriter | None,
        durable: bool,
        waiter: Waiter | None,
        releases: list[Claim],
        ops: list[TxOp],
        results: list[object] | None,
    ) -> None:
        self.rows, self.events, self.ledger = rows, events, ledger
        self.durable, self.waiter, self.releases = durable, waiter, releases
        self.ops, self.results = ops, results


class Writer:
    """One thread and one connection committing a journal's batches (see module doc)."""

    def __init__(
        self,
        path: Path | db.Location,
        *,
        timeout_s: float,
        window_s: float,
        connect: Callable[[], Conn] | None = None,
        fence: Fence | None = None,
        retry_first_s: float = RETRY_FIRST_S,
        retry_max_s: float = RETRY_MAX_S,
    ) -> None:
        self._path = path
        self._retry_first_s = retry_first_s
        self._retry_max_s = max(retry_max_s, retry_first_s)
        self._retry_s = 0.0  # the back-off now (0: the last commit worked)
        self._retry_at = 0.0  # monotonic time before which no unwaited attempt is made
        self.failures = 0
        """Failed commits in a row (0 once one works)."""
        self._streak_logged = False  # this streak's first unwaited failure was logged
        self._fence = fence
        self._window_s = window_s
        self._backend = db.open_backend(path)
        backend = self._backend

        def backend_connect() -> Conn:
            if isinstance(backend, db.SqliteBackend):  # through _sqlite: tests wrap it
                return _sqlite.connect_writer(backend.path, timeout_s=timeout_s)
            return backend.connect_writer(timeout_s=timeout_s)

        self._connect = connect or backend_connect
        self._cond = threading.Condition()
        self._pending: list[_Batch] = []
        self._first_at = 0.0  # monotonic time the oldest pending batch arrived
        self._urgent = False
        self._stalled = False  # the last commit failed: wait for a submit before retrying
        self.last_ok_monotonic = time.monotonic()
        """When the last commit (or heartbeat) succeeded: a controller fences itself when it
        is too long ago (:mod:`cellauto.controller.fencing`)."""
        self._busy = False  # a commit is under way
        self._stopping = False
        self._abandoned = False
        self._conn: Conn | None = None
        self._open_error: JournalError | None = None
        self.commits = 0
        """Transactions committed (for benchmarks and tests)."""
        self.fsyncs = 0
        """Commits made under ``synchronous=FULL`` (one fsync each)."""
        self._thread = threading.Thread(
            target=self._main, name=f"cellauto journal writer ({path.name})", daemon=True
        )
        self._thread.start()

    # -- the loop's side ----------------------------------------------------------------
    def submit(
        self,
        rows: list[Row],
        events: list[LedgerEvent],
        ledger: LedgerWriter | None,
        *,
        durable: bool = False,
        urgent: bool = False,
        waiter: Waiter | None = None,
        releases: list[Claim] | None = None,
        ops: list[TxOp] | None = None,
        results: list[object] | None = None,
    ) -> None:
        """Queue a batch; with ``urgent`` (or ``durable``) commit without waiting the window.

        ``releases``: claims to release in the same transaction (runs ended, or closed).
        ``ops``: transaction operations (:mod:`._txops`) run in the commit; their results
        (a value, or :class:`~cellauto.records._txops.OpFailed`) are put in ``results``
        before ``waiter`` is settled. Ops whose commit fails are not retried.
        """
        batch = _Batch(rows, events, ledger, durable, waiter, releases or [], ops or [], results)
        with self._cond:
            if self._stopping:
                raise JournalError(f"journal {self._path} is closed")
            idle = not self._pending or self._stalled
            if not self._pending:
                self._first_at = time.monotonic()
            self._pending.append(batch)
            self._stalled = False
            if durable or urgent:
                self._urgent = True
            if idle or self._urgent:
                self._cond.notify_all()

    def wait(self, waiter: SyncWaiter) -> None:
        """Block until ``waiter``'s batch is committed; raise its commit's error."""
        with self._cond:
            while not waiter.done:
                self._cond.wait()
        if waiter.error is not None:
            raise waiter.error

    def wait_idle(self) -> None:
        """Block until every batch handed over so far has been tried (tests, benchmarks)."""
        with self._cond:
            while (self._pending and not self._stalled) or self._busy:
                self._cond.wait()

    def stop(self) -> None:
        """End the thread once the queue is empty; call after a successful flush."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join()

    def abandon(self) -> None:
        """Stop as a dying process would: a commit under way finishes; the queue is lost."""
        with self._cond:
            self._stopping = self._abandoned = True
            self._pending.clear()
            self._cond.notify_all()
        self._thread.join()

    # -- the writer's side --------------------------------------------------------------
    def _take(self) -> list[_Batch] | None:
        """The batches to commit next; [] when only a heartbeat is due; None: stop."""
        with self._cond:
            while True:
                if self._abandoned or (self._stopping and (not self._pending or self._stalled)):
                    return None
                if self._pending and not self._stalled:
                    break
                beat_in_s = None if self._fence is None else self._fence.until_beat_s()
                if beat_in_s is not None:
                    beat_in_s = max(beat_in_s, self._retry_at - time.monotonic())
                if beat_in_s is not None and beat_in_s <= 0:
                    self._busy = True
                    return []
                self._cond.wait(beat_in_s)
            while not (self._urgent or self._stopping):
                due = max(self._first_at + self._window_s, self._retry_at)  # backed off
                remaining = due - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            if self._abandoned:
                return None
            batches, self._pending = self._pending, []
            self._urgent = False
            self._busy = True
            return batches

    def _main(self) -> None:
        try:
            self._conn = self._connect()
        except JournalError as exc:
            self._open_error = exc
        try:
            while (batches := self._take()) is not None:
                try:
                    error = self._commit(batches)
                except Exception as exc:  # a bug or an unexpected value: tell, never hang
                    _log.exception("journal %s: the writer failed", self._path)
                    error = JournalError(
                        f"cannot write to journal {self._path}: unexpected "
                        f"{type(exc).__name__}: {exc}; the records are kept in memory and "
                        "retried by the next flush (report this as a bug)"
                    )
                waited = any(b.durable or b.waiter for b in batches)
                self._note_outcome(error, told=waited)  # before the batches count as tried
                if error is None:
                    self.last_ok_monotonic = time.monotonic()
                with self._cond:
                    self._busy = False
                    if error is not None:
                        self._pending[:0] = batches
                        self._stalled = True
                    for batch in batches:
                        if error is not None:
                            batch.ops = []  # its caller is told it failed: never done later
                        if batch.waiter is not None:
                            batch.waiter.settle(error)
                            batch.waiter = None  # a retried batch has nobody waiting
                    self._cond.notify_all()
        finally:
            if self._conn is not None:
                self._conn.close()

    def _note_outcome(self, error: JournalError | None, *, told: bool) -> None:
        """Back off after a failed commit (see module doc), reset once one works."""
        if error is None:
            if self.failures:
                _log.warning(
                    "journal %s: commits work again after %d failed attempts",
                    self._path,
                    self.failures,
                )
            self.failures, self._retry_s, self._retry_at = 0, 0.0, 0.0
            self._streak_logged = False
            return
        self.failures += 1
        self._retry_s = min(max(self._retry_s * 2, self._retry_first_s), self._retry_max_s)
        self._retry_at = time.monotonic() + self._retry_s
        if not (told or self._streak_logged):  # nobody will be told otherwise
            self._streak_logged = True
            _log.error(
                "%s; retrying in %.2g s, then less and less often (at most every %.3g s)"
                " until a commit works",
                error,
                self._retry_s,
                self._retry_max_s,
            )
        else:
            _log.debug("%s (failure %d in a row)", error, self.failures)

    def _commit(self, batches: list[_Batch]) -> JournalError | None:
        rows = [row for batch in batches for row in batch.rows]
        events = [event for batch in batches for event in batch.events]
        releases = [claim for batch in batches for claim in batch.releases]
        ops = [op for batch in batches for op in batch.ops]
        ledger = next((b.ledger for b in batches if b.ledger is not None), None)
        durable = any(batch.durable for batch in batches)
        conn = self._conn
        fence = self._fence
        if conn is None:
            return self._open_error or JournalError(f"journal {self._path}: writer not open")
        beat = fence is not None and not batches  # [] from _take: a heartbeat is due
        if not rows and not events and not releases and not beat and not ops:
            return self._fsync_wal() if durable else None
        try:
            if events and ledger is None:  # unreachable: runs are begun through the ledger
                raise JournalError(f"journal {self._path}: ledger entries due but no signing key")
            prepared = None
            results: list[object] = []
            if durable:
                db.set_durable(conn, True)
            try:
                # with ledger entries to write, take the write lock first and chain them
                # after the ledger as stored now: other writers may share the file; with
                # runs held, take it first too, so that the fence reads the owners as
                # they are when the rows go in
                locks: tuple[Lock, ...] = (Lock.FENCE,) if fence is not None else ()
                # ops may change sites, lots and shared instruments' queues
                locks += (Lock.SITE, Lock.MATERIALS, Lock.ASSET) if ops else ()
                locks += (Lock.LEDGER,) if events or ops else ()
                db.begin_write(conn, *locks, shared=(Lock.FENCE,))  # none: a plain BEGIN
                if fence is not None:
                    rows, events = fence.admit(conn, rows, events)
                if ops:
                    events, results = self._apply(conn, ops, events, ledger)
                if ledger is not None and events:
                    ledger.follow(_sqlite.last_ledger_row(conn))
                    prepared = ledger.prepare(events)
                db.insert_records(conn, rows)
                if prepared is not None and ledger is not None:
                    conn.executemany(_sqlite.INSERT_LEDGER, prepared.rows)
                    conn.execute(_sqlite.PUT_LEDGER_HEAD, prepared.head)
                    conn.execute(_sqlite.PUT_PUBLIC_KEY, (ledger.signer.public.hex,))
                if releases:
                    now_ns = time.time_ns()
                    conn.executemany(
                        RELEASE, [(now_ns, now_ns, c.run_id, c.epoch) for c in releases]
                    )
                if fence is not None:
                    fence.beat(conn)
                if (rows or ops) and db.is_postgresql(conn):  # told to listeners at commit
                    announce_changes(conn, run_spans(rows), site=bool(ops))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            finally:
                if durable:
                    self._normal_sync(conn)
        except sqlite3.Error as exc:
            if beat:
                return JournalError(
                    f"cannot write the heartbeat of the runs held to journal {self._path}: "
                    f"{exc} (is the database reachable?)"
                )
            return JournalError(
                f"cannot write {len(rows)} records to journal {self._path}: {exc}; they are "
                "kept in memory and written by the next flush (check disk space and locks)"
            )
        except JournalError as exc:
            return exc
        if prepared is not None and ledger is not None:
            ledger.committed(prepared)
        if ops:
            _hand_out(batches, results)
        self.commits += not beat  # a heartbeat of its own is not a commit of records
        self.fsyncs += durable
        return None

    def _apply(
        self,
        conn: Conn,
        ops: list[TxOp],
        events: list[LedgerEvent],
        ledger: LedgerWriter | None,
    ) -> tuple[list[LedgerEvent], list[object]]:
        """Run the commit's ops (each in a savepoint); their ledger entries join the commit's."""
        lost = {} if self._fence is None else self._fence.lost
        op_events, results = apply_ops(conn, ops, lost)
        if op_events and ledger is None:  # unreachable: run_ops loads the signing key first
            raise JournalError(f"journal {self._path}: ledger entries due but no signing key")
        return events + op_events, results

    def _normal_sync(self, conn: Conn) -> None:
        """Back to synchronous=NORMAL; if that fails, stay FULL (slower, never less safe):
        the commit itself must not be reported as failed, or it would be written twice."""
        try:
            db.set_durable(conn, False)
        except sqlite3.Error:
            _log.warning("journal %s: stays synchronous=FULL", self._path, exc_info=True)

    def _fsync_wal(self) -> JournalError | None:
        """Make earlier commits (written without fsync) durable: fsync the WAL file."""
        try:
            if not self._backend.sync():  # no WAL file: all in the database file
                return None
        except OSError as exc:
            return JournalError(f"cannot fsync journal {self._path}: {exc}")
        self.fsyncs += 1
        return None


def _hand_out(batches: list[_Batch], results: list[object]) -> None:
    """Give each batch the results of its own ops (in the order they ran)."""
    start = 0
    for batch in batches:
        count = len(batch.ops)
        if batch.results is not None:
            batch.results[:] = results[start : start + count]
        start += count
