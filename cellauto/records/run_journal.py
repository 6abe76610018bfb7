"""The writer of one run's hash chain (see :mod:`cellauto.records.journal`)."""

from __future__ import annotations

import hashlib
import time
from asyncio import _get_running_loop as _running_loop
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NoReturn

from cellauto.errors import FencedError, JournalError
from cellauto.records._owners import Claim
from cellauto.records.canonical import record_body, record_body_fast
from cellauto.records.payloads import Payload

if TYPE_CHECKING:
    from cellauto.records._txops import TxOp
    from cellauto.records.journal import Journal

__all__ = ["FLUSH_THRESHOLD", "RunJournal"]

FLUSH_THRESHOLD = 1000
"""Buffered records that make ``append`` flush."""

_sha256 = hashlib.sha256
_time_ns = time.time_ns
_KIND_TEXT: dict[type[Payload], str] = {}
"""Each payload model's record kind as stored (``kind.value`` is an enum property, slower)."""


def _kind_text(payload: Payload) -> str:
    text = _KIND_TEXT[type(payload)] = payload.kind.value
    return text


class RunJournal:
    """The writer of one run's chain; get one from :meth:`Journal.begin_run`."""

    def __init__(
        self,
        journal: Journal,
        run_id: str,
        process_clock: Callable[[], float],
        next_seq: int,
        head_hash: str,
        wall_clock_ns: Callable[[], int] | None = None,
        anchored_seq: int = -1,
    ) -> None:
        self._journal = journal
        self._wall_clock_ns = wall_clock_ns  # None: real wall time (time.time_ns)
        self._buffer = journal._buffer
        self._run_id = run_id
        self._clock = process_clock
        self._next_seq = next_seq
        self._head = head_hash
        self._writable = True
        self._schedule = journal._schedule
        self.anchored_seq = anchored_seq
        """The last record of this run covered by a ledger entry (-1: none yet)."""
        self.anchor_watermark = anchored_seq
        """``append`` tells the anchor schedule about a record whose seq passes this."""
        self._lost = journal._lost  # runs taken over from this journal (see _fence)
        self.claim: Claim | None = None
        """This controller's claim on the run (epoch, and the claim it replaced)."""
        self.last_wall_time_ns: int | None = None
        """The wall time of the last record appended (its ``wall_time_ns``)."""

    @property
    def run_id(self) -> str:
        return self._run_id

    @property
    def next_seq(self) -> int:
        return self._next_seq

    @property
    def head_hash(self) -> str:
        """Hash of the last appended record (the genesis hash before the first)."""
        return self._head

    def append(
        self, payload: Payload, *, durable: bool = False, wait: bool = True
    ) -> tuple[int, str]:
        """Append one record; return its (seq, hash). See the module doc for durability.

        The record's kind is the payload model's (:mod:`cellauto.records.payloads`).
        ``durable=True, wait=False`` inside a running loop: committed with an fsync at
        once by the writer, without blocking the loop; every later durable append,
        flush and read waits for it (a state change, a deviation: nothing is done
        physically on the strength of it before a durable intent, which waits).
        """
        seq, digest = self._chain(payload)
        buffer = self._buffer
        if durable or len(buffer) >= FLUSH_THRESHOLD:
            self._journal._after_append(durable, wait)  # now
            if durable and wait and self._lost:
                self.check_owned()  # taken over meanwhile: the record was refused
        else:
            loop = _running_loop()
            if loop is not None and loop is not self._journal._tick_loop:
                self._journal._after_append(durable, wait)  # at the end of this tick
        return seq, digest

    def _chain(self, payload: Payload) -> tuple[int, str]:
        """Number, chain and buffer one record (handed over later: see ``append``)."""
        if self._lost:
            self.check_owned()
        kind_text = _KIND_TEXT.get(type(payload))  # known: a Payload model
        if kind_text is None or not self._writable:
            if not self._writable or not isinstance(payload, Payload):
                self._refuse(payload)
            kind_text = _kind_text(payload)
        seq = self._next_seq
        prev = self._head
        process_time_s = float(self._clock())
        wall_time_ns = _time_ns() if self._wall_clock_ns is None else self._wall_clock_ns()
        fields = payload.__dict__
        body = record_body_fast(
            self._run_id, seq, kind_text, process_time_s, wall_time_ns, prev, fields
        )
        if body is None:  # a None or a non-finite float somewhere, or a value to convert
            body = record_body(
                self._run_id, seq, kind_text, process_time_s, wall_time_ns, prev, fields
            )
        digest = _sha256(body).hexdigest()
        self._buffer.append(
            (
                self._run_id,
                seq,
                kind_text,
                process_time_s,
                wall_time_ns,
                body.decode(),
                prev,
                digest,
            )
        )
        self._next_seq = seq + 1
        self._head = digest
        self.last_wall_time_ns = wall_time_ns
        if seq > self.anchor_watermark:  # record 0, first after an anchor, or an anchor due
            self._schedule.note(self, seq, digest)
        return seq, digest

    def check_owned(self) -> None:
        """Raise :class:`~cellauto.errors.FencedError` if another controller took the run over."""
        why = self._lost.get(self._run_id)
        if why is not None:
            raise FencedError(why)

    async def append_durable(self, payload: Payload) -> tuple[int, str]:
        """Append one record and return its (seq, hash) once it is on disk (fsync'd).

        The awaitable form of ``append(payload, durable=True)``: the loop keeps running
        while the writer thread commits, and the durable appends of every run in the
        same loop tick (and those made while an fsync is under way) share one fsync.
        The record is numbered and chained at once; if the commit fails,
        :class:`~cellauto.errors.JournalError` is raised (the record is kept and written
        by a later commit): do not perform the action it announces.
        """
        appended = self.append(payload)
        await self._journal.wait_durable()
        if self._lost:
            self.check_owned()  # taken over meanwhile: the record was refused
        return appended

    async def append_durable_together(self, payloads: Sequence[Payload]) -> list[tuple[int, str]]:
        """Append records that a crash must keep all or none of; return each (seq, hash)
        once they are on disk.

        They are numbered, chained and buffered without a hand-over between them, so
        that the writer gets them in one batch, committed in one transaction (a run's
        ``run_started`` and the ``materials_reserved`` naming the lots its claim
        reserved: a resumed run needs both). Errors as :meth:`append_durable`.
        """
        appended = [self._chain(payload) for payload in payloads]
        await self._journal.wait_durable()
        if self._lost:
            self.check_owned()  # taken over meanwhile: the records were refused
        return appended

    async def run_ops(self, ops: Sequence[TxOp]) -> list[object]:
        """Commit this run's records appended so far with ``ops`` in one fsync'd
        transaction (:meth:`Journal.run_ops`); each op's value, in order."""
        values = await self._journal.run_ops(ops)
        if self._lost:
            self.check_owned()
        return values

    def _refuse(self, payload: object) -> NoReturn:
        where = f"run {self._run_id!r} record {self._next_seq}"
        if not self._writable:
            raise JournalError(f"{where}: the run is sealed or its journal is closed")
        raise JournalError(
            f"{where}: a record is one of the payload models of cellauto.records.payloads, "
            f"not {type(payload).__name__}"
        )

    def seal(self) -> str:
        """Flush, store the run's last seq and head hash durably, and return the head hash."""
        if not self._writable:
            raise JournalError(f"run {self._run_id!r} is already sealed or its journal is closed")
        if self._next_seq == 0:
            raise JournalError(f"run {self._run_id!r} has no records; append before sealing")
        self.check_owned()
        self._journal._sealed(self)
        self.check_owned()  # taken over before the seal was committed: it was refused
        self._writable = False
        return self._head
