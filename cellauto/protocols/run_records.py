"""The records of a run: every payload an :class:`~cellauto.protocols.execution.Execution`
journals passes here, and on to its observers.

:class:`RunRecords` is a base class of ``Execution``, which sets the attributes
declared here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from cellauto.clock import Clock, time_paused
from cellauto.records import RunJournal
from cellauto.records import payloads as rec

__all__ = ["RUNNER", "Observer", "RunRecords"]

logger = logging.getLogger("cellauto.protocols.execution")  # the run's logger

Observer = Callable[[rec.Payload, float], None]
"""Called with each record's payload as it is journaled, and the process time (epoch s)."""
RUNNER = "runner"
"""Who the runner's own commands name (``by``)."""


class RunRecords:
    """Journaling a run's records and telling its observers (a base of ``Execution``)."""

    run_id: str
    clock: Clock
    _journal: RunJournal
    _claimed: rec.ControllerClaimed | None  # journaled after run_started or run_resumed
    _observers: list[Observer]

    def record(self, payload: rec.Payload, *, durable: bool = False) -> int:
        """Journal one record of this run; returns its sequence number.

        ``durable``: committed with an fsync at once, without stalling the loop (and
        every batch on it); a physical action waits for it through the durable intent
        that precedes the action (:meth:`record_durable`).
        """
        seq, _ = self._journal.append(payload, durable=durable, wait=False)
        self._observe(payload)
        return seq

    def record_at(self, payload: rec.Payload) -> tuple[int, int | None]:
        """Journal one record (as :meth:`record`); its seq and the wall time it carries."""
        seq = self.record(payload)
        return seq, self._journal.last_wall_time_ns

    async def record_durable(self, payload: rec.Payload) -> int:
        """Journal one record and return its seq once it is on disk (fsync'd).

        The loop keeps running meanwhile; the durable records of all runs made in the
        same loop tick share one fsync. Virtual time stands still while it waits.
        """
        with time_paused():  # a commit takes no process time, as on the line
            seq, _ = await self._journal.append_durable(payload)
        self._observe(payload)
        return seq

    async def record_durable_together(self, payloads: Sequence[rec.Payload]) -> list[int]:
        """Journal records that a crash must keep all or none of, in one commit; their
        seqs once they are on disk (see :meth:`RunJournal.append_durable_together`)."""
        with time_paused():
            appended = await self._journal.append_durable_together(payloads)
        for payload in payloads:
            self._observe(payload)
        return [seq for seq, _ in appended]

    def _record_claim(self) -> None:
        if self._claimed is not None:
            self.record(self._claimed)

    def _observe(self, payload: rec.Payload) -> None:
        if self._observers:
            now = self.clock.now_s()
            for observer in list(self._observers):
                try:
                    observer(payload, now)
                except Exception:  # a display must never disturb the batch
                    logger.exception("run %s: observer %r failed; detached", self.run_id, observer)
                    self._observers.remove(observer)

    def alarm(self, message: str, *, severity: str = "warning", source: str = "run") -> None:
        self.record(rec.Alarm(source=source, severity=severity, message=message))
        logger.warning("run %s alarm (%s): %s", self.run_id, severity, message)
