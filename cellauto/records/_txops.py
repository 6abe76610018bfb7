"""Transaction operations: work a controller adds to the writer thread's next commit.

A controller's event loop never writes SQLite itself. When it must change more than
its run's records in the same transaction as them - append site records (an answer
signed at the console), open or close a row of ``tasks``, settle a ``run_requests``
row - it hands the writer thread :class:`TxOp` objects with its records
(:meth:`cellauto.records.Journal.run_ops`). In the commit, after the fence has
admitted the rows and before the ledger entries are chained and signed, each op runs
inside its own ``SAVEPOINT``: an op that raises is rolled back alone and its error
goes to its caller only, so a buggy op can never stall the commits of other runs. An
op of a run this controller has lost (:mod:`cellauto.records._fence`) is skipped with
:class:`~cellauto.errors.FencedError`. The ledger entries an op returns (the
``site_anchor`` of :class:`SiteAppend`) are signed with the commit's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple, Protocol

from cellauto.errors import FencedError
from cellauto.records._schema import upgrade
from cellauto.records.backend import Conn
from cellauto.records.ledger import LedgerEvent
from cellauto.records.refs import SiteRef
from cellauto.records.site_chain import Projector, append_in_tx, next_wall_time_ns
from cellauto.records.site_payloads import SitePayload

__all__ = ["ConnOp", "OpFailed", "SiteAppend", "TxOp", "TxOutcome", "apply_ops"]


class TxOutcome(NamedTuple):
    """What an op did: the ledger entries it needs, and the value its caller gets."""

    events: list[LedgerEvent]
    value: object


class TxOp(Protocol):
    """One operation inside a writer commit (see the module doc)."""

    @property
    def run_id(self) -> str | None:
        """The run it belongs to (fenced with the run's rows); None: site-level."""
        ...

    def apply(self, conn: Conn) -> TxOutcome:
        """Do the work with ``conn``, inside the commit's write transaction."""
        ...


class OpFailed(NamedTuple):
    """An op's result when it raised (its effects were rolled back)."""

    error: BaseException


class SiteAppend:
    """Append site records (and project them) in the commit; its value: their refs.

    ``process_time_s``: the run's process time, when the records are written on a
    run's clock (an answer given at the console); by default the wall time.
    """

    def __init__(
        self,
        payloads: Sequence[SitePayload],
        *,
        project: Projector | None = None,
        process_time_s: float | None = None,
        run_id: str | None = None,
    ) -> None:
        self.payloads = list(payloads)
        self.project = project
        self.process_time_s = process_time_s
        self.run_id = run_id

    def apply(self, conn: Conn) -> TxOutcome:
        upgrade(conn)
        refs, event = append_in_tx(
            conn,
            self.payloads,
            wall_time_ns=next_wall_time_ns(conn, time.time_ns()),
            project=self.project,
            process_time_s=self.process_time_s,
        )
        return TxOutcome([event], refs)

    def refs(self, value: object) -> list[SiteRef]:
        """The refs an applied op returned (typed for its caller)."""
        if not isinstance(value, list):  # unreachable: apply returns the list
            raise TypeError(f"SiteAppend returned {value!r}")
        return [ref for ref in value if isinstance(ref, SiteRef)]


class ConnOp:
    """Change other tables in the commit (a ``tasks`` row opened, a request settled):
    ``change(conn)`` is called inside the write transaction; its value is the op's.

    ``run_id``: the run it belongs to (skipped with FencedError once the run is lost)."""

    def __init__(self, change: Callable[[Conn], object], *, run_id: str | None, what: str) -> None:
        self.change = change
        self.run_id = run_id
        self.what = what

    def apply(self, conn: Conn) -> TxOutcome:
        upgrade(conn)
        return TxOutcome([], self.change(conn))

    def __repr__(self) -> str:
        return f"ConnOp({self.what}, run {self.run_id})"


def apply_ops(
    conn: Conn, ops: Sequence[TxOp], lost: Mapping[str, str]
) -> tuple[list[LedgerEvent], list[object]]:
    """Run ``ops`` in order, each in its own savepoint; return their events and results.

    A result is the op's value, or :class:`OpFailed` (its effects rolled back; a run
    in ``lost`` fails with FencedError without running). An SQLite error that leaves
    the transaction unusable (the rollback to the savepoint fails) ends the commit.
    """
    events: list[LedgerEvent] = []
    results: list[object] = []
    for number, op in enumerate(ops):
        run_id = op.run_id
        if run_id is not None and run_id in lost:
            results.append(OpFailed(FencedError(lost[run_id])))
            continue
        savepoint = f"op_{number}"
        conn.execute(f"SAVEPOINT {savepoint}")
        try:
            outcome = op.apply(conn)
        except Exception as exc:
            conn.execute(f"ROLLBACK TO {savepoint}")
            conn.execute(f"RELEASE {savepoint}")
            results.append(OpFailed(exc))
            continue
        conn.execute(f"RELEASE {savepoint}")
        events.extend(outcome.events)
        results.append(outcome.value)
    return events, results
