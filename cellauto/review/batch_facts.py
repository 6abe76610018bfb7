"""What QA's decision rests on, read from one run's records: its start, end, plan,
tasks and what its people signed.

One pass over the run's records (:func:`batch_facts`) gives the facts the release rules
(:mod:`cellauto.review.disposition`) and the certificate of analysis
(:mod:`cellauto.review.coa`) need, so both read the run alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cellauto.errors import RunNotFoundError
from cellauto.records import Journal
from cellauto.records._sqlite import stored_rows
from cellauto.records.backend import Conn
from cellauto.records.models import Record
from cellauto.records.payloads import BatchValue, RunEnded, RunStarted
from cellauto.records.release_plan import ReleasePlan
from cellauto.records.task_payloads import TaskAnswered, TaskOpened, TaskRejected, TaskVerified

__all__ = ["BatchFacts", "batch_facts", "batch_facts_in", "facts_of"]


@dataclass
class BatchFacts:
    """The facts of one run a release decision needs."""

    run_id: str
    started: RunStarted
    started_at: datetime
    ended: RunEnded | None = None
    ended_at: datetime | None = None
    head_seq: int = 0
    head_hash: str = ""
    plan: ReleasePlan | None = None
    plan_seq: int | None = None
    values: dict[str, Any] = field(default_factory=dict)
    """The run's batch values by name (the last recorded of each)."""
    unverified_tasks: list[tuple[int, str]] = field(default_factory=list)
    """(task_answered seq, task name) of two-person tasks answered but never verified."""
    performed_by: dict[str, int] = field(default_factory=dict)
    """Who signed ``performed`` on the run (a task's answer), with a record seq."""

    @property
    def params(self) -> dict[str, Any]:
        return self.started.parameters

    @property
    def simulated(self) -> bool:
        return self.started.simulated

    @property
    def din(self) -> str | None:
        value = self.params.get("din")
        return None if value is None else str(value)

    @property
    def coi(self) -> str | None:
        if self.plan is not None and self.plan.coi:
            return self.plan.coi
        value = self.params.get("coi")
        return None if value is None else str(value)


def _at(wall_time_ns: int) -> datetime:
    return datetime.fromtimestamp(wall_time_ns / 1e9, tz=UTC)


def batch_facts(journal: Journal, run_id: str) -> BatchFacts:
    """Read the run once; RunNotFoundError when it has no records."""
    return facts_of(run_id, journal.records(run_id), where=str(journal.location))


def batch_facts_in(conn: Conn, run_id: str) -> BatchFacts:
    """:func:`batch_facts` through a bare connection to the journal file (``verify``)."""
    records = [Record.from_row(run_id, row) for row in stored_rows(conn, run_id)]
    return facts_of(run_id, records, where="this journal")


def facts_of(run_id: str, records: Sequence[Record], *, where: str) -> BatchFacts:
    """The facts of a run from its records in seq order."""
    if not records or not isinstance(records[0].payload, RunStarted):
        raise RunNotFoundError(f"no run {run_id!r} in {where}; `cellauto runs` lists them")
    first = records[0]
    assert isinstance(first.payload, RunStarted)  # checked above; narrows for mypy
    facts = BatchFacts(run_id=run_id, started=first.payload, started_at=_at(first.wall_time_ns))
    opened: dict[str, TaskOpened] = {}
    answered: dict[str, tuple[int, str]] = {}
    for record in records:
        payload = record.payload
        facts.head_seq, facts.head_hash = record.seq, record.hash
        if isinstance(payload, ReleasePlan) and facts.plan is None:
            facts.plan, facts.plan_seq = payload, record.seq
        elif isinstance(payload, RunEnded):
            facts.ended, facts.ended_at = payload, _at(record.wall_time_ns)
        elif isinstance(payload, TaskOpened):
            opened[payload.task_id] = payload
        elif isinstance(payload, TaskAnswered):
            task = opened.get(payload.task_id)
            if task is not None and task.summary.verify:
                answered[payload.task_id] = (record.seq, task.name)
            if not payload.signature.simulated:
                facts.performed_by.setdefault(payload.signature.signer, record.seq)
        elif isinstance(payload, TaskVerified | TaskRejected):
            answered.pop(payload.task_id, None)
        elif isinstance(payload, BatchValue):
            facts.values[payload.name] = payload.value
    facts.unverified_tasks = sorted(answered.values())
    return facts
