"""``verify`` of QC results on the site chain: what the acts refused cannot be there.

On the replay of the whole site chain (:func:`cellauto.site.replay.replay_problem`):

- each stored verdict and observed value is recomputed from the result's body, the run's
  ``release_plan`` record, its batch values and parameters (:mod:`cellauto.review.qc_eval`);
- every ``fail`` has its ``deviation_raised(origin="qc", qc_result=id)`` in the same
  transaction (the records right after the result: signatures and its deviations);
- result ids are the derived ones (the n-th result of a test of a run is ``...-nn``);
- a verification names the entry it checks and is never by the person who entered it;
- an import's ``schema_ref`` is a ``lims_schema_defined`` record of the name it gives;
- a failing result is invalidated only on a deviation of its run that was investigated
  or closed by then, never by one of its investigators;
- every QC act is signed by its actor: an entry or import ``performed``, a verification
  ``verified``, an invalidation and a LIMS schema ``approved``, the deviation an OOS
  result opened ``performed``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from cellauto.errors import ReviewRefusedError
from cellauto.records.backend import Conn
from cellauto.records.refs import Meaning
from cellauto.records.site_payload_base import SitePayload
from cellauto.records.site_payloads import Signature
from cellauto.records.site_payloads_review import (
    DeviationClassified,
    DeviationClosed,
    DeviationInvestigated,
    DeviationRaised,
    DeviationWithdrawn,
    LimsSchemaDefined,
    QcResultBody,
    QcResultEntered,
    QcResultInvalidated,
    QcResultsImported,
    QcResultVerified,
)
from cellauto.review.ids import qc_result_id
from cellauto.review.qc_eval import invalidation_problem, observe, verdict
from cellauto.review.qc_run import RunFacts, run_facts
from cellauto.site.replay_signed import Signatures

__all__ = ["QC_MEANINGS", "qc_problem"]

QC_MEANINGS: dict[type[SitePayload], Meaning] = {
    QcResultEntered: Meaning.PERFORMED,
    QcResultsImported: Meaning.PERFORMED,
    QcResultVerified: Meaning.VERIFIED,
    QcResultInvalidated: Meaning.APPROVED,
    LimsSchemaDefined: Meaning.APPROVED,
}
"""The meaning of the signature each QC record needs (by its actor); a deviation an OOS
result opened (``deviation_raised``, origin ``qc``) needs ``performed``."""


def _same(stored: float | str, recomputed: float | str) -> bool:
    if isinstance(stored, str) or isinstance(recomputed, str):
        return stored == recomputed
    return math.isclose(stored, recomputed, rel_tol=1e-9, abs_tol=1e-12)


class _Replay:
    def __init__(self, conn: Conn, records: Sequence[Any]) -> None:
        self.conn = conn
        self.records = records
        self.facts: dict[str, RunFacts | None] = {}
        self.counts: dict[tuple[str, str], int] = {}
        self.entered: dict[str, tuple[int, str]] = {}  # result id -> (seq, by)
        self.schemas: dict[int, tuple[str, str]] = {}  # seq -> (hash, name)
        self.verdicts: dict[str, str] = {}  # result id -> verdict
        self.deviations: dict[str, tuple[str, str]] = {}  # id -> (run id, status)
        self.investigators: dict[str, set[str]] = {}
        self.signatures = Signatures(records)

    def run(self, run_id: str) -> RunFacts | None:
        if run_id not in self.facts:
            self.facts[run_id] = run_facts(self.conn, run_id)
        return self.facts[run_id]

    def opened(self, index: int) -> set[str]:
        """The results whose deviations the act at ``index`` opened in its transaction."""
        act = self.records[index]
        found: set[str] = set()
        for record in self.records[index + 1 :]:
            payload = record.payload
            if record.wall_time_ns != act.wall_time_ns:
                break
            if isinstance(payload, DeviationRaised) and payload.origin == "qc":
                found.add(payload.qc_result or "")
            elif not isinstance(payload, Signature):
                break
        return found

    def result(
        self,
        seq: int,
        run_id: str,
        body: QcResultBody,
        observed: float | str,
        stored: str,
        opened: set[str],
    ) -> str | None:
        self.verdicts[body.result_id] = stored
        key = (run_id, body.test)
        self.counts[key] = self.counts.get(key, 0) + 1
        derived = qc_result_id(run_id, body.test, self.counts[key])
        if body.result_id != derived:
            return f"site record {seq}: QC result id {body.result_id} is not the derived {derived}"
        facts = self.run(run_id)
        test = facts.plan.test(body.test) if facts is not None and facts.plan else None
        if facts is None or test is None:
            return (
                f"site record {seq}: QC result {body.result_id} is of {body.test!r}, which is"
                f" no test of run {run_id}'s release plan"
            )
        try:
            again = observe(test, body.value, body.text, facts.values, facts.params)
        except ReviewRefusedError as exc:
            return f"site record {seq}: QC result {body.result_id} cannot be judged: {exc}"
        if not _same(observed, again) or verdict(test, again) != stored:
            return (
                f"site record {seq}: QC result {body.result_id} says {observed!r} ({stored}),"
                f" but its value and run {run_id}'s release plan give {again!r}"
                f" ({verdict(test, again)})"
            )
        if stored == "fail" and body.result_id not in opened:
            return (
                f"site record {seq}: QC result {body.result_id} is out of specification but"
                " no deviation was opened with it"
            )
        return None

    def problem(self) -> str | None:
        for index, record in enumerate(self.records):
            payload, seq = record.payload, record.seq
            problem: str | None = None
            if isinstance(payload, LimsSchemaDefined):
                self.schemas[seq] = (record.hash, payload.name)
            elif isinstance(payload, QcResultEntered):
                self.entered[payload.result.result_id] = (seq, payload.by)
                problem = self.result(
                    seq,
                    payload.run_id,
                    payload.result,
                    payload.observed,
                    payload.verdict,
                    self.opened(index),
                )
            elif isinstance(payload, QcResultsImported):
                schema = self.schemas.get(payload.schema_ref.seq)
                if schema != (payload.schema_ref.hash, payload.schema_name):
                    problem = (
                        f"site record {seq}: import names LIMS schema {payload.schema_name!r}"
                        f" at site record {payload.schema_ref.seq}, which is not its definition"
                    )
                opened = self.opened(index)
                for body, observed, stored in zip(
                    payload.results, payload.observed, payload.verdicts, strict=True
                ):
                    problem = problem or self.result(
                        seq, payload.run_id, body, observed, stored, opened
                    )
            elif isinstance(payload, QcResultInvalidated):
                problem = self.invalidation(seq, payload)
            elif isinstance(payload, QcResultVerified):
                entry = self.entered.get(payload.result_id)
                if entry is None or entry[0] != payload.entry.seq:
                    problem = (
                        f"site record {seq}: verifies {payload.result_id}, which was not entered"
                        f" by hand at site record {payload.entry.seq}"
                    )
                elif entry[1] == payload.by:
                    problem = (
                        f"site record {seq}: {payload.by} verifies {payload.result_id}, which"
                        " they entered themselves"
                    )
            self.deviation(payload)
            problem = problem or self.unsigned(record)
            if problem is not None:
                return problem
        return None

    def deviation(self, payload: Any) -> None:
        """Follow the deviations' status (the workflow itself is replay_deviations')."""
        if isinstance(payload, DeviationRaised):
            self.deviations[payload.deviation_id] = (payload.run_id, "open")
        elif isinstance(payload, DeviationClassified):
            _run, status = self.deviations.get(payload.deviation_id, (payload.run_id, "open"))
            if status in ("open", "classified"):
                self.deviations[payload.deviation_id] = (payload.run_id, "classified")
        elif isinstance(payload, DeviationInvestigated):
            self.investigators.setdefault(payload.deviation_id, set()).add(payload.by)
            self.deviations[payload.deviation_id] = (payload.run_id, "investigated")
        elif isinstance(payload, DeviationClosed):
            self.deviations[payload.deviation_id] = (payload.run_id, "closed")
        elif isinstance(payload, DeviationWithdrawn):
            self.deviations[payload.deviation_id] = (payload.run_id, "withdrawn")

    def invalidation(self, seq: int, p: QcResultInvalidated) -> str | None:
        if self.verdicts.get(p.result_id) != "fail":
            return None
        if p.deviation_id is None:
            return (
                f"site record {seq}: {p.by} invalidates {p.result_id}, which is out of"
                " specification, naming no OOS investigation"
            )
        run_id, status = self.deviations.get(p.deviation_id, (p.run_id, "open"))
        if run_id != p.run_id:
            return (
                f"site record {seq}: invalidates {p.result_id} of run {p.run_id} on"
                f" {p.deviation_id}, a deviation of run {run_id}"
            )
        problem = invalidation_problem(status, self.investigators.get(p.deviation_id, set()), p.by)
        if problem is not None:
            return (
                f"site record {seq}: {p.by} invalidates {p.result_id}, which is out of"
                f" specification, on {p.deviation_id}: {problem[1]}"
            )
        return None

    def unsigned(self, record: Any) -> str | None:
        payload = record.payload
        if isinstance(payload, DeviationRaised):
            if payload.origin != "qc":
                return None  # a person's: replay_deviations checks it
            return self.signatures.missing(
                record, Meaning.PERFORMED, payload.by, f"deviation_raised of {payload.deviation_id}"
            )
        meaning = QC_MEANINGS.get(type(payload))
        if meaning is None:
            return None
        return self.signatures.missing(record, meaning, payload.by, payload.kind.value)


def qc_problem(conn: Conn, records: Sequence[Any]) -> str | None:
    """The first QC result on the site chain that the acts would have refused, or None."""
    return _Replay(conn, records).problem()
