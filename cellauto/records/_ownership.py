"""Run ownership as a :class:`~cellauto.records.Journal` holds it: claims and releases.

The journal's side of :mod:`cellauto.records._owners` (the ``run_owners`` table):
the claims this journal holds (``_owned``), claimed by ``begin_run``/``resume_run``,
kept alive and fenced by the writer thread (:mod:`cellauto.records._fence`), released
with a run's seal, by :meth:`RunOwnership.release_run` and on close.
:class:`RunOwnership` is a base class of :class:`~cellauto.records.Journal`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from cellauto.errors import JournalError
from cellauto.records import _owners
from cellauto.records._handoff import WriterHandoff
from cellauto.records.backend import Conn, Location
from cellauto.records.run_journal import RunJournal

__all__ = ["RunOwnership"]


class RunOwnership(WriterHandoff):
    """The runs this journal controls (a base of ``Journal``)."""

    def release_run(self, run: RunJournal) -> None:
        """Give up a run opened here without sealing it (a resume refused after its claim):
        its buffered records are written, its claim released; it takes no more records."""
        if self._open_runs.get(run.run_id) is not run:
            raise JournalError(f"run {run.run_id!r} is not open for writing in this journal")
        self.flush()
        del self._open_runs[run.run_id]
        run._writable = False
        held = self._owned.get(run.run_id)
        self._release([held] if held is not None else [])

    def _release(self, claims: list[_owners.Claim]) -> None:
        self._barrier(durable=False, releases=claims)
        self._let_go([claim.run_id for claim in claims])

    def check_owner(self, run_id: str) -> None:
        """Refuse at once (:class:`~cellauto.errors.RunOwnedError`) a run that has a live
        controller; reads only (``cellauto resume`` asks before it connects to the line)."""
        _owners.check_unowned(
            self._connection(),
            self._owner_key(),
            run_id,
            stale_s=self._stale_s,
            now_ns=time.time_ns(),
        )

    def _claim(
        self,
        conn: Conn,
        run_id: str,
        *,
        new_run: bool,
        reserve: Callable[[Conn], None] | None = None,
    ) -> _owners.Claim:
        """Claim the run for this controller (refused if another one is live); keep it.
        ``reserve``: run in the claim's transaction (see :func:`_owners.claim`)."""
        held = _owners.claim(
            conn,
            self._owner_key(),
            run_id,
            new_run=new_run,
            stale_s=self._stale_s,
            reserve=reserve,
        )
        self._lost.pop(run_id, None)
        self._owned[run_id] = held
        self._writer_thread()  # its heartbeat keeps the claim alive from now on
        return held

    def _owner_key(self) -> Path | Location:
        return self._path.resolve()

    def _let_go(self, run_ids: list[str]) -> list[_owners.Claim]:
        """Forget these runs' claims here (released, or a simulated crash)."""
        claims = [self._owned.pop(run_id) for run_id in run_ids if run_id in self._owned]
        _owners.let_go(self._owner_key(), claims)
        return claims
