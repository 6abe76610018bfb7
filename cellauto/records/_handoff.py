"""The hand-off of a :class:`~cellauto.records.Journal`'s records to its writer thread.

The journal's side of the durability rules in :mod:`cellauto.records.journal`: the
records appended are buffered, then handed over to the writer thread
(:mod:`cellauto.records._writer`) at the end of the loop tick, when the buffer is
full, for a durable append, before a read and on ``flush``/``sync``/``close``.
:class:`WriterHandoff` is a base class of :class:`~cellauto.records.Journal`, which
sets the attributes declared here.
"""

from __future__ import annotations

import asyncio
import logging
from asyncio import AbstractEventLoop
from asyncio import _get_running_loop as _running_loop
from pathlib import Path

from cellauto.errors import JournalError
from cellauto.records import _owners
from cellauto.records._fence import Fence
from cellauto.records._txops import TxOp
from cellauto.records._waiters import AsyncWaiter, SyncWaiter, Waiter
from cellauto.records._writer import Writer
from cellauto.records.anchors import AnchorSchedule
from cellauto.records.backend import Conn, Location
from cellauto.records.ledger import LedgerEvent, LedgerWriter
from cellauto.records.run_journal import FLUSH_THRESHOLD, RunJournal

__all__ = ["Row", "WriterHandoff"]

_log = logging.getLogger("cellauto.records.journal")  # as the writer thread's
Row = tuple[str, int, str, float, int, str, str, str]
"""A record as buffered and written: run id, seq, kind, process time, wall time, ..."""


class WriterHandoff:
    """Buffering, the writer thread and the hand-off to it (a base of ``Journal``)."""

    _path: Path | Location
    _conn: Conn | None
    _timeout_s: float
    _window_s: float
    _stale_s: float
    _heartbeat_s: float | None
    _writer: Writer | None  # started by the first write
    _buffer: list[Row]
    _tick_durable: asyncio.Future[None] | None  # durable waiters this tick
    _tick_loop: AbstractEventLoop | None  # loop with a flush scheduled
    _open_runs: dict[str, RunJournal]
    _ledger: LedgerWriter | None  # made by the first begin/resume
    _schedule: AnchorSchedule
    _owned: dict[str, _owners.Claim]  # runs this journal controls
    _lost: dict[str, str]  # runs taken over from it: why (set by the writer)

    def _connection(self) -> Conn:
        conn = self._conn
        if conn is None:
            raise JournalError(f"journal {self._path} is closed")
        return conn

    def flush(self) -> None:
        """Write everything appended so far; return once it is committed (no fsync)."""
        self._barrier(durable=False)

    def sync(self) -> None:
        """Like :meth:`flush`, and fsync: everything appended so far is on disk."""
        self._barrier(durable=True)

    def _writer_thread(self) -> Writer:
        writer = self._writer
        if writer is None:
            if self._conn is None:
                raise JournalError(f"journal {self._path} is closed")
            fence = Fence(
                self._path,
                self._owned,
                self._lost,
                stale_s=self._stale_s,
                heartbeat_s=self._heartbeat_s,
            )
            writer = self._writer = Writer(
                self._path, timeout_s=self._timeout_s, window_s=self._window_s, fence=fence
            )
        return writer

    def _handoff(
        self,
        *,
        durable: bool = False,
        urgent: bool = False,
        waiter: Waiter | None = None,
        seal: LedgerEvent | None = None,
        anchor_all: bool = False,
        releases: list[_owners.Claim] | None = None,
        ops: list[TxOp] | None = None,
        results: list[object] | None = None,
    ) -> bool:
        """Hand the buffered records (and the ledger entries due) to the writer thread.

        ``ops`` (and ``results``, filled before ``waiter`` is settled): see
        :meth:`cellauto.records._writer.Writer.submit`.

        Returns False when there was nothing to hand over and nothing to wait for.
        """
        if self._conn is None:
            raise JournalError(f"journal {self._path} is closed")
        buffer = self._buffer
        events = self._schedule.events(everything=anchor_all) if self._ledger else []
        if seal is not None:
            events.append(seal)
        if not buffer and not events and waiter is None and not releases:
            return False
        writer = self._writer_thread()
        rows = buffer.copy()
        writer.submit(
            rows,
            events,
            self._ledger,
            durable=durable,
            urgent=urgent,
            waiter=waiter,
            releases=releases,
            ops=ops,
            results=results,
        )
        buffer.clear()
        if events:  # they will be written (a failed commit is retried): not due again
            self._schedule.written(events, self._open_runs)
        return True

    def _barrier(
        self,
        *,
        durable: bool,
        seal: LedgerEvent | None = None,
        anchor_all: bool = False,
        releases: list[_owners.Claim] | None = None,
    ) -> None:
        """Hand over the buffer and block until it (and all before it) is committed."""
        if self._conn is None:
            raise JournalError(f"journal {self._path} is closed")
        nothing_to_anchor = not anchor_all or self._ledger is None
        if self._writer is None and not self._buffer and seal is None and nothing_to_anchor:
            return  # nothing was ever written: no thread needed (read-only use)
        waiter = SyncWaiter()
        self._handoff(
            durable=durable,
            urgent=True,
            waiter=waiter,
            seal=seal,
            anchor_all=anchor_all,
            releases=releases,
        )
        self._writer_thread().wait(waiter)

    async def wait_durable(self) -> None:
        """Wait (without blocking the loop) until every record appended so far is on disk.

        The durable appends of all runs in one loop tick share one commit and one fsync;
        those made while it runs share the next (group fsync).
        """
        loop = _running_loop()
        if loop is None:  # unreachable from a coroutine
            raise JournalError("wait_durable needs a running event loop")
        future = self._tick_durable
        if future is None or self._tick_loop is not loop:
            future = self._tick_durable = loop.create_future()
            if self._tick_loop is not loop:
                self._tick_loop = loop
                loop.call_soon(self._tick_flush)
        await asyncio.shield(future)

    def _tick_flush(self) -> None:
        self._tick_loop = None
        future, self._tick_durable = self._tick_durable, None
        if self._conn is None:
            if future is not None and not future.done():
                future.set_exception(JournalError(f"journal {self._path} was closed"))
            return
        waiter = None
        if future is not None:
            waiter = AsyncWaiter(asyncio.get_running_loop(), future)
        try:
            self._handoff(durable=waiter is not None, urgent=waiter is not None, waiter=waiter)
        except JournalError as exc:
            if future is not None and not future.done():
                future.set_exception(exc)
            else:
                _log.exception("end-of-tick journal hand-off failed; records stay buffered")

    def _after_append(self, durable: bool, wait: bool = True) -> None:
        if durable and not wait and _running_loop() is not None:
            self._handoff(durable=True, urgent=True)  # fsync'd at once, the loop runs on
        elif durable:
            self._barrier(durable=True)
        elif len(self._buffer) >= FLUSH_THRESHOLD:
            if _running_loop() is None:
                self._barrier(durable=False)
            else:
                self._handoff()
        else:
            loop = _running_loop()
            if loop is not None and loop is not self._tick_loop:
                self._tick_loop = loop
                loop.call_soon(self._tick_flush)
