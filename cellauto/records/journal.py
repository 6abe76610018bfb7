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

Durability (a writer thread, group commit, group fsync)
    ``append`` numbers, chains and hashes the record at once and puts it in an
    in-memory buffer shared by all runs of the journal. Every commit is made by the
    journal's writer thread (:mod:`cellauto.records._writer`, started by the first
    write, with its own connection), so the event loop never waits on SQLite. The
    buffer is *handed over* to it (one list, under a lock):

    a. at the end of the current event-loop tick: the first ``append`` in a tick,
       when an asyncio loop is running in this thread, schedules one
       ``loop.call_soon``. The writer commits what it was handed once the commit
       window (``window_s``, 5 ms) of the oldest batch closes, or at once for an
       urgent batch; every batch pending then goes in one transaction;
    b. when the buffer holds 1,000 records (without a running loop: and waits);
    c. by ``await run.append_durable(payload)`` (in the tick's hand-off, urgent): it
       returns once the record - and every record appended before it - is committed
       under ``PRAGMA synchronous=FULL`` (fsync'd). The durable appends of every run
       in the same loop tick share that one commit and fsync, and those made while it
       runs share the next (group fsync). Record an intended physical action this way
       *before* doing it; if it raises, do not perform the action;
    d. by ``append(..., durable=True)``, the blocking form of (c) for scripts and
       code that cannot await: it returns once the record is fsync'd, blocking the
       thread meanwhile; with ``wait=False`` inside a running loop (the runner's state
       changes, deviations, failed steps: code that cannot await) the record is handed
       over urgent, committed with an fsync at once, and the loop runs on; every later
       durable append, flush or read waits for it;
    e. before every read (``records``, ``runs``, ``resolve_run_id``, verify,
       export) and on ``flush``, which wait until everything appended before them is
       committed; on ``seal`` (with an fsync), ``sync`` (fsync) and ``close``.

    The ledger entries due (see :mod:`cellauto.records.anchors`) are handed over
    with the records they cover and written in the same transaction, with one
    signature each and one for the ledger head: no record is ever signed on its own.
    ``close`` anchors every open run's unanchored tail.

    So a crash of the process can lose only the records of the loop tick in which it
    died and those of the last commit window (a few ms); a crash of the machine
    (power loss) can also lose the commits made since the last fsync, never a durable
    record. Without a running loop (scripts, the CLI) records stay buffered until
    (b), (d) or (e).

    A failed commit keeps its records (and ledger entries), in order, at the head of
    the writer's queue, to be written by the next commit: nothing handed over is
    dropped. A durable appender, a flush or a read waiting for it gets
    :class:`~cellauto.errors.JournalError`; a failure nobody waits for is logged, and
    the next hand-off tries again. A seal whose commit fails raises, and stays queued
    (the run takes no more records).

Transaction operations
    ``await journal.run_ops(ops)`` runs :class:`~cellauto.records._txops.TxOp` objects in
    the writer's next commit (urgent, fsync'd), in the same transaction as the records
    appended before them, each in its own savepoint; ``await journal.site_append(payloads)``
    appends site records (:mod:`cellauto.records.site_chain`) that way, anchored in the
    ledger by the same commit. So a controller's answer at the console, its task rows and
    the run records about them are written together, without blocking the loop.

One controller per run
    :meth:`Journal.begin_run` and :meth:`Journal.resume_run` claim the run for this
    process (see :mod:`cellauto.records._owners`): a run with a live controller
    elsewhere is refused (:class:`~cellauto.errors.RunOwnedError`) before anything is
    written; a dead or stale one is taken over with the next epoch. The writer thread
    keeps the claims' heartbeats and fences every commit (:mod:`._fence`): once another
    controller has taken a run over, this journal's records of it are refused
    (:class:`~cellauto.errors.FencedError`). A run's claim is released when it is
    sealed, and every claim still held on :meth:`Journal.close`.

Layout
    Records are stored in append order (a rowid table) and found by the
    ``(run_id, seq)`` unique index, and the WAL is checkpointed every 32 MB: with
    many runs appending at once, the earlier layout (clustered by run) rewrote a
    half-full page per run per commit (see ``bench/bench_journal_load.py``).

A journal is used from one thread (the event loop's); only its writer thread works
beside it.

Code
    :class:`Journal` opens the file and begins, resumes, seals and closes runs; its
    bases hold the rest: the hand-off to the writer thread
    (:mod:`cellauto.records._handoff`), the runs it owns
    (:mod:`cellauto.records._ownership`) and reading (:mod:`cellauto.records._reading`).
"""

from __future__ import annotations

import asyncio
import os
import time
from asyncio import AbstractEventLoop
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

from cellauto.errors import JournalError, RunNotFoundError
from cellauto.records import _owners, _sqlite
from cellauto.records._handoff import Row
from cellauto.records._ownership import RunOwnership
from cellauto.records._reading import JournalReading
from cellauto.records._txops import OpFailed, SiteAppend, TxOp
from cellauto.records._writer import AsyncWaiter, Writer
from cellauto.records.anchors import AnchorSchedule
from cellauto.records.backend import Conn, Location, open_backend
from cellauto.records.kinds import GENESIS_HASH
from cellauto.records.ledger import AnchorPolicy, LedgerEvent, LedgerKind, LedgerWriter
from cellauto.records.refs import SITE_CHAIN, SiteRef
from cellauto.records.run_journal import FLUSH_THRESHOLD, RunJournal
from cellauto.records.signing import Signer, signer_for_journal
from cellauto.records.site_chain import Projector
from cellauto.records.site_payloads import SitePayload

__all__ = ["COMMIT_WINDOW_S", "FLUSH_THRESHOLD", "AnchorPolicy", "Journal", "RunJournal"]

COMMIT_WINDOW_S = 0.005
"""How long the writer thread gathers records nobody waits for before committing them."""


class Journal(RunOwnership, JournalReading):
    """One journal file holding the records of many runs.

    ``create=False`` refuses to create a missing file (read-only commands use it).
    ``timeout_s`` is how long a write waits for another connection's lock.
    ``signing_key`` (a :class:`Signer` or a key file path; default: see the module
    doc) signs the ledger; ``anchors`` sets how often running runs are anchored.
    ``owner_stale_s``: real seconds without a heartbeat after which another
    controller's claim on a run counts as gone (default ``$CELLAUTO_OWNER_STALE_S``,
    else 30 s); its claims' heartbeats are written every quarter of it, or every
    ``owner_heartbeat_s`` if that is shorter (a controller's self-fence).
    ``any_thread``: the journal may be used from a thread other than the one that
    opened it, one thread at a time (the web app's connection pools).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | Location,
        *,
        create: bool = True,
        timeout_s: float = 5.0,
        signing_key: Signer | str | os.PathLike[str] | None = None,
        anchors: AnchorPolicy | None = None,
        window_s: float = COMMIT_WINDOW_S,
        owner_stale_s: float | None = None,
        any_thread: bool = False,
        owner_heartbeat_s: float | None = None,
    ) -> None:
        self._location = Location.parse(path)
        self._backend = open_backend(self._location)
        self._path: Path | Location = self._location.path or self._location
        self._stale_s = _owners.stale_interval_s(owner_stale_s)  # refused before opening
        self._heartbeat_s = owner_heartbeat_s
        self._conn: Conn | None = self._backend.connect(
            create=create, timeout_s=timeout_s, any_thread=any_thread
        )
        self._timeout_s = timeout_s
        self._window_s = window_s
        self._writer: Writer | None = None  # started by the first write
        self._buffer: list[Row] = []
        self._tick_durable: asyncio.Future[None] | None = None  # durable waiters this tick
        self._open_runs: dict[str, RunJournal] = {}
        self._tick_loop: AbstractEventLoop | None = None  # loop with a flush scheduled
        self._signing_key = signing_key
        self._ledger: LedgerWriter | None = None  # made by the first begin/resume
        self._schedule = AnchorSchedule(anchors or AnchorPolicy())
        self._begun_here: set[str] = set()  # run ids begun by this Journal object
        self._run_count: int | None = None  # counted once, then kept by begin_run
        self._owned: dict[str, _owners.Claim] = {}  # runs this journal controls
        self._lost: dict[str, str] = {}  # runs taken over from it: why (set by the writer)

    @property
    def path(self) -> Path:
        """The journal's SQLite file (a PostgreSQL journal has none: see :attr:`location`)."""
        return self._location.sqlite_path()

    @property
    def location(self) -> Location:
        """Where the journal is (its file, or a database URL)."""
        return self._location

    # -- writing ---------------------------------------------------------------

    def begin_run(
        self,
        run_id: str,
        process_clock: Callable[[], float],
        wall_clock_ns: Callable[[], int] | None = None,
        *,
        reserve: Callable[[Conn], None] | None = None,
    ) -> RunJournal:
        """Start the record of a new run; its first record gets seq 0.

        ``reserve(conn)`` runs inside the claim's transaction (the run's lot
        reservations): if it raises, nothing is written and the error is raised here.
        """
        if not isinstance(run_id, str) or not run_id:
            raise JournalError(f"run id must be a non-empty string, not {run_id!r}")
        _refuse_site_chain(run_id)
        conn = self._connection()  # no flush: runs begun here are known without the file
        if run_id in self._begun_here or _sqlite.has_run(conn, run_id):
            raise JournalError(
                f"run {run_id!r} already has records in {self._path}; "
                "use resume_run to continue it, or start the run under a new id"
            )
        self._ledger_writer(conn)
        count = self.run_count()
        held = self._claim(conn, run_id, new_run=True, reserve=reserve)
        opened = self._open(run_id, process_clock, 0, GENESIS_HASH, wall_clock_ns, -1)
        opened.claim = held
        self._run_count = count + 1
        self._begun_here.add(run_id)
        return opened

    def resume_run(
        self,
        run_id: str,
        process_clock: Callable[[], float],
        wall_clock_ns: Callable[[], int] | None = None,
    ) -> RunJournal:
        """Continue the chain of an existing, unsealed run (e.g. after a crash)."""
        _refuse_site_chain(run_id)
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
        held = self._claim(conn, run_id, new_run=False)
        # read the chain's end again under the claim: an owner taken over as stale may
        # have committed records since; from the claim on, nothing more of its gets in
        last = _sqlite.edge_row(conn, run_id, last=True)
        anchored = _sqlite.last_anchored_seq(conn, run_id)
        if last is None or anchored is None or _sqlite.seal_of(conn, run_id) is not None:
            self._release([held])
            raise JournalError(
                f"run {run_id!r} was sealed by its previous controller while this one took it "
                "over; a sealed run takes no more records"
            )
        opened = self._open(run_id, process_clock, last.seq + 1, last.hash, wall_clock_ns, anchored)
        opened.claim = held
        return opened

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

    # -- transaction operations (site records, task rows) ------------------------

    async def run_ops(self, ops: Sequence[TxOp]) -> list[object]:
        """Run ``ops`` in the writer's next commit, with everything appended before them.

        The commit is urgent and fsync'd; the records appended so far go in the same
        transaction. Each op runs in its own savepoint (:mod:`cellauto.records._txops`):
        one that raises is rolled back alone, the others and the records are committed,
        and then the first op's error is raised here. Returns each op's value, in order.
        Raises :class:`~cellauto.errors.JournalError` if the commit failed (the ops are
        then not done, now or later).
        """
        loop = asyncio.get_running_loop()
        self._ledger_writer(self._connection())  # the key, before anything is written
        future: asyncio.Future[None] = loop.create_future()
        results: list[object] = []
        self._handoff(
            durable=True,
            urgent=True,
            waiter=AsyncWaiter(loop, future),
            ops=list(ops),
            results=results,
        )
        await future
        failed = next((r for r in results if isinstance(r, OpFailed)), None)
        if failed is not None:
            raise failed.error
        return results

    async def site_append(
        self,
        payloads: Sequence[SitePayload],
        *,
        project: Projector | None = None,
        process_time_s: float | None = None,
    ) -> list[SiteRef]:
        """Append site records in the writer's next commit (fsync'd), anchored in the
        ledger with it: a controller's sync-free form of
        :meth:`cellauto.records.site_store.SiteStore.transaction`."""
        op = SiteAppend(payloads, project=project, process_time_s=process_time_s)
        (value,) = await self.run_ops([op])
        return op.refs(value)

    def _ledger_writer(self, conn: Conn) -> LedgerWriter:
        """The ledger writer, loading the signing key on first use (before any write)."""
        if self._ledger is not None:
            return self._ledger
        signer = signer_for_journal(self._path, self._signing_key, _sqlite.stored_public_key(conn))
        self._ledger = LedgerWriter(_sqlite.last_ledger_row(conn), signer)
        return self._ledger

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
        del self._open_runs[run.run_id]
        run._writable = False  # the seal is queued: even if its commit fails, it is kept
        held = self._owned.get(run.run_id)
        self._barrier(durable=True, seal=seal, releases=[held] if held else None)
        self._let_go([run.run_id])

    # -- lifecycle -------------------------------------------------------------

    def close(self) -> None:
        """Flush (anchoring every open run's tail) and close.

        If the flush fails, the journal stays open and keeps the records.
        """
        if self._conn is None:
            return
        releases = [held for run_id, held in self._owned.items() if run_id not in self._lost]
        self._barrier(durable=False, anchor_all=True, releases=releases)
        self._let_go(list(self._owned))
        if self._writer is not None:
            self._writer.stop()
            self._writer = None
        self._conn.close()
        self._conn = None
        for run in self._open_runs.values():
            run._writable = False
        self._open_runs.clear()

    def commit_age_s(self) -> float | None:
        """Real seconds since the writer last committed (a heartbeat counts), or None
        while this journal holds no run (it need not reach the database then)."""
        writer = self._writer
        if writer is None or not any(run not in self._lost for run in self._owned):
            return None
        return time.monotonic() - writer.last_ok_monotonic

    def abandon(self) -> None:
        """Close as a crashing process would: records not yet handed over are lost.

        For crash tests (see ``Runner.resume``): the records of the current loop tick
        are dropped; what the writer thread already holds is committed first (as if the
        process died just after that commit), so that a test's outcome never depends on
        thread timing. Durable records always survive; the runs still open take no more
        records.
        """
        conn, self._conn = self._conn, None
        self._buffer.clear()
        self._schedule.clear()
        self._let_go(list(self._owned))  # the claims stay in the file, held by nobody
        for run in self._open_runs.values():
            run._writable = False
        self._open_runs.clear()
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.stop()
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


def _refuse_site_chain(run_id: str) -> None:
    if run_id == SITE_CHAIN:
        raise JournalError(
            f"run id {SITE_CHAIN!r} is reserved: it names the journal's site chain (accounts, "
            "training, signatures); choose another run id"
        )
