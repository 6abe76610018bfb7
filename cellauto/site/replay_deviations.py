"""``verify`` of the deviation workflow: the site chain's deviation records replayed in
chain order through the rules the acts enforce (:mod:`cellauto.review.deviation_rules`).

The acts refuse every one of these, so a problem here means a forged or edited chain.
The first is named: an illegal transition (``site record 812 closes DEV-3f9a1c2e7b10-01,
which is open, not classified yet ...``), a closure breaking the CAPA rule, a closer who
investigated the deviation (first or in an amendment), a withdrawn runner deviation, a
site-raised id that is not the next one of its run, a runner deviation whose
``run_record`` is not the run's ``deviation`` record of that ordinal, a transition no
``signature`` of the right meaning by its actor signs. (Whether the rows agree with the records is
:func:`cellauto.site.projection_review.review_problem`'s to say.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from cellauto.records.backend import Conn
from cellauto.records.refs import Meaning, RecordRef
from cellauto.records.site_payload_base import SitePayload
from cellauto.records.site_payloads_review import (
    Classification,
    DeviationClassified,
    DeviationClosed,
    DeviationInvestigated,
    DeviationRaised,
    DeviationWithdrawn,
)
from cellauto.review.deviation_rules import Act, Status, capa_problem, transition_problem
from cellauto.review.ids import parse_deviation_id, site_deviation_id
from cellauto.site.replay_signed import Signatures

__all__ = ["DEVIATION_MEANINGS", "deviations_problem"]

_DeviationRecord = (
    DeviationRaised
    | DeviationClassified
    | DeviationInvestigated
    | DeviationClosed
    | DeviationWithdrawn
)

DEVIATION_MEANINGS: Mapping[type[SitePayload], Meaning] = {
    DeviationRaised: Meaning.PERFORMED,
    DeviationClassified: Meaning.REVIEWED,
    DeviationInvestigated: Meaning.PERFORMED,
    DeviationClosed: Meaning.APPROVED,
    DeviationWithdrawn: Meaning.APPROVED,
}
"""The meaning of the signature each deviation record needs (by its actor)."""

_VERB: Mapping[str, str] = {
    "raise": "raises",
    "classify": "classifies",
    "reclassify": "reclassifies",
    "investigate": "investigates",
    "close": "closes",
    "withdraw": "withdraws",
}


class _Record(Protocol):
    @property
    def seq(self) -> int: ...
    @property
    def hash(self) -> str: ...
    @property
    def payload(self) -> SitePayload: ...


@dataclass
class _State:
    run_id: str
    origin: str
    status: Status = "open"
    classification: Classification | None = None
    investigators: set[str] = field(default_factory=set)


def _run_deviation(conn: Conn, run_id: str, ordinal: int) -> tuple[int, str] | None:
    """(seq, hash) of the run's ``ordinal``-th ``deviation`` record (1-based)."""
    row = conn.execute(
        "SELECT seq, hash FROM records WHERE run_id = ? AND kind = 'deviation'"
        " ORDER BY seq LIMIT 1 OFFSET ?",
        (run_id, ordinal - 1),
    ).fetchone()
    return None if row is None else (int(row[0]), str(row[1]))


class _Replay:
    def __init__(self, conn: Conn, records: Sequence[_Record]) -> None:
        self.conn = conn
        self.states: dict[str, _State] = {}
        self.raised: dict[str, int] = {}
        self.signatures = Signatures(records)

    def _raise(self, seq: int, p: DeviationRaised) -> str | None:
        if p.deviation_id in self.states:
            return f"site record {seq} raises {p.deviation_id}, which exists"
        number = self.raised.get(p.run_id, 0) + 1
        expected = site_deviation_id(p.run_id, number)
        if p.deviation_id != expected:
            return (
                f"site record {seq} raises {p.deviation_id}, but the next deviation raised"
                f" for run {p.run_id} is {expected}"
            )
        self.raised[p.run_id] = number
        self.states[p.deviation_id] = _State(p.run_id, p.origin)
        return None

    def _first_of_runner(
        self, seq: int, p: DeviationClassified, run_record: RecordRef
    ) -> str | None:
        """A classification naming a run record: it creates the row of a runner deviation."""
        parsed = parse_deviation_id(p.deviation_id)
        if p.deviation_id in self.states or parsed.origin != "runner":
            return (
                f"site record {seq} names run record #{run_record.seq} for {p.deviation_id},"
                " which is no runner deviation without a row"
            )
        found = _run_deviation(self.conn, p.run_id, parsed.number)
        named = (run_record.run_id, run_record.seq, run_record.hash, run_record.kind)
        if (
            found is None
            or named != (p.run_id, found[0], found[1], "deviation")
            or p.run_id[:12] != parsed.run_key
        ):
            return (
                f"site record {seq} names run record #{run_record.seq} of run"
                f" {run_record.run_id} as {p.deviation_id}, which is not that run's deviation"
                f" record no. {parsed.number}"
            )
        self.states[p.deviation_id] = _State(p.run_id, "runner")
        return None

    def _act(self, p: _DeviationRecord) -> Act:
        if isinstance(p, DeviationClassified):
            return "classify" if p.previous is None else "reclassify"
        if isinstance(p, DeviationInvestigated):
            return "investigate"
        return "close" if isinstance(p, DeviationClosed) else "withdraw"

    def step(self, seq: int, p: _DeviationRecord) -> str | None:
        if isinstance(p, DeviationRaised):
            return self._raise(seq, p)
        if isinstance(p, DeviationClassified) and p.run_record is not None:
            problem = self._first_of_runner(seq, p, p.run_record)
            if problem is not None:
                return problem
        act = self._act(p)
        state = self.states.get(p.deviation_id)
        if state is None:
            return (
                f"site record {seq} {_VERB[act]} {p.deviation_id}, which no earlier site record"
                " raised or created from its run record"
            )
        if state.run_id != p.run_id:
            return f"site record {seq} names run {p.run_id} for {p.deviation_id} of {state.run_id}"
        _, why, to = transition_problem(
            state.status,
            act,
            origin=state.origin,
            classification=state.classification,
            reason=p.reason,
        )
        if to is None:
            return f"site record {seq} {_VERB[act]} {p.deviation_id}, which {why}"
        if isinstance(p, DeviationClassified):
            if p.previous != state.classification:
                was = state.classification.value if state.classification else "unclassified"
                previous = p.previous.value if p.previous else "none"
                return (
                    f"site record {seq} reclassifies {p.deviation_id} from {previous},"
                    f" but it was {was}"
                )
            state.classification = p.classification
        elif isinstance(p, DeviationInvestigated):
            state.investigators.add(p.by)
        elif isinstance(p, DeviationClosed):
            problem = capa_problem(state.classification, p.capa, p.no_capa_reason)
            if problem is not None:
                return f"site record {seq} closes {p.deviation_id} against the CAPA rule: {problem}"
            if p.by in state.investigators:
                return (
                    f"site record {seq} closes {p.deviation_id} by {p.by}, who investigated it"
                    " (segregation of duties)"
                )
        state.status = to
        return None

    def unsigned(self, record: _Record, p: _DeviationRecord) -> str | None:
        if isinstance(p, DeviationRaised) and p.origin != "person":
            return None  # opened by a QC result: signed with the result (its own check)
        meaning = DEVIATION_MEANINGS[type(p)]
        return self.signatures.missing(record, meaning, p.by, f"{p.kind.value} of {p.deviation_id}")


def deviations_problem(conn: Conn, records: Sequence[_Record]) -> str | None:
    """The first deviation record, in chain order, that breaks the workflow's rules or
    is not signed as it must be (see the module doc); None when all hold."""
    replay = _Replay(conn, records)
    for record in records:
        p = record.payload
        if not isinstance(p, _DeviationRecord):
            continue
        problem = replay.step(record.seq, p) or replay.unsigned(record, p)
        if problem is not None:
            return problem
    return None
