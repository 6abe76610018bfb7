"""Which runs are due a ledger entry at the next commit (see :mod:`cellauto.records.ledger`).

The hot path costs one integer comparison per appended record: a
:class:`~cellauto.records.RunJournal` calls :meth:`AnchorSchedule.note` only when a
record's seq passes the run's ``anchor_watermark``, i.e. for its record 0, for its
first record after an anchor, and when ``every_records`` records wait unanchored.
Runs waiting for the time limit are kept in the order they started waiting, so a
commit looks only at those whose time is up.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from cellauto.records.ledger import AnchorPolicy, LedgerEvent, LedgerKind

if TYPE_CHECKING:
    from cellauto.records.run_journal import RunJournal

__all__ = ["NEVER", "AnchorSchedule"]

NEVER = 1 << 62
"""A watermark no seq reaches: the run is already due (or sealed)."""

_monotonic_ns = time.monotonic_ns


class AnchorSchedule:
    """Runs due a ``run_begun`` or ``anchor`` entry; cleared after a successful commit."""

    def __init__(self, policy: AnchorPolicy) -> None:
        self.policy = policy
        self._every_ns = round(policy.every_s * 1e9)
        self._begun: dict[str, str] = {}  # run id -> hash of its record 0
        self._waiting: dict[str, tuple[RunJournal, int]] = {}  # since (monotonic ns), in order
        self._due: dict[str, RunJournal] = {}

    def note(self, run: RunJournal, seq: int, digest: str) -> None:
        """``run`` appended record ``seq`` (hash ``digest``) past its watermark."""
        run_id = run.run_id
        if seq == 0:
            self._begun[run_id] = digest
            run.anchored_seq = 0
            run.anchor_watermark = 0
        elif seq - run.anchored_seq >= self.policy.every_records:
            self._waiting.pop(run_id, None)
            self._due[run_id] = run
            run.anchor_watermark = NEVER
        else:
            self._waiting[run_id] = (run, _monotonic_ns())
            run.anchor_watermark = run.anchored_seq + self.policy.every_records - 1

    def events(self, *, everything: bool = False) -> list[LedgerEvent]:
        """The entries due now (all unanchored runs with ``everything``); nothing changes."""
        events = [LedgerEvent(LedgerKind.RUN_BEGUN, r, 0, h) for r, h in self._begun.items()]
        runs = list(self._due.values())
        if self._waiting:
            deadline = _monotonic_ns() - self._every_ns
            for run, since in self._waiting.values():
                if not everything and since > deadline:
                    break
                runs.append(run)
        for run in runs:
            if run.next_seq - 1 > run.anchored_seq:
                events.append(
                    LedgerEvent(LedgerKind.ANCHOR, run.run_id, run.next_seq - 1, run.head_hash)
                )
        return events

    def written(self, events: list[LedgerEvent], runs: dict[str, RunJournal]) -> None:
        """``events`` are committed: the runs they anchor wait for their next records."""
        for event in events:
            if event.kind is LedgerKind.RUN_BEGUN:
                self._begun.pop(event.run_id, None)
                continue
            self._due.pop(event.run_id, None)
            self._waiting.pop(event.run_id, None)
            run = runs.get(event.run_id)
            if run is not None and event.kind is LedgerKind.ANCHOR:
                run.anchored_seq = event.run_seq
                run.anchor_watermark = event.run_seq

    def forget(self, run_id: str) -> None:
        """The run is sealed (its seal covers everything) or closed."""
        self._begun.pop(run_id, None)
        self._due.pop(run_id, None)
        self._waiting.pop(run_id, None)

    def clear(self) -> None:
        self._begun.clear()
        self._due.clear()
        self._waiting.clear()
