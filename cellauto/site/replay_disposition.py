"""Verify the dispositions of batches: each decision as the records say it was made.

For every ``batch_disposed`` site record, ``cellauto verify`` checks that

* its certificate of analysis hashes to the ``coa_sha256`` it carries;
* the run record it names as the run's head (``run_head``) is in the run's chain with
  that hash, and is the run's last record before the decision (a run does not go on
  after its batch was decided);
* it is signed, in the site chain after it, by the person who decided, with the
  meaning of the decision (``released`` or ``rejected``);
* a release was not decided by a person who signed ``performed`` on a record of the run;
* no run has two decisions (the ``dispositions`` table's key enforces it where the
  projection is written; here the chain itself is checked);
* its certificate is the one the records gave at that moment: the run's review records
  before the decision are replayed into a scratch database and the certificate rebuilt
  from them and the run (each test's result and verdict, the deviations and their status,
  the batch, the decision) must equal the one recorded;
* a release met the release rules at that moment: the run ended Complete with a release
  plan, every deviation closed or withdrawn, every required test with a valid passing
  result (one entered by hand verified by a second person), and the releaser neither
  performed a task of the batch nor entered one of its results. A release written around
  the act, or against projections edited to look clean, is named here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

import orjson

from cellauto.errors import RunNotFoundError
from cellauto.records._schema import REVIEW_STATEMENTS
from cellauto.records.backend import Conn
from cellauto.records.refs import SITE_CHAIN, Meaning, SiteRef
from cellauto.records.site_payload_base import SitePayload
from cellauto.records.site_payloads import Signature
from cellauto.records.site_payloads_review import (
    SITE_REVIEW_PAYLOADS,
    BatchDisposed,
    QcResultBody,
    QcResultEntered,
    QcResultsImported,
)
from cellauto.review.batch_facts import BatchFacts, batch_facts_in
from cellauto.review.coa import build_coa, coa_sha256
from cellauto.review.read import DeviationRow, QcRow, read_deviations, read_qc_results
from cellauto.site.projection_review import apply_review_projection

__all__ = ["disposition_problem"]


class _Record(Protocol):
    @property
    def seq(self) -> int: ...
    @property
    def hash(self) -> str: ...
    @property
    def wall_time_ns(self) -> int: ...
    @property
    def payload(self) -> SitePayload: ...


_REVIEW_KINDS = frozenset(SITE_REVIEW_PAYLOADS)


def _review_as_of(records: Sequence[_Record], run_id: str, seq: int) -> Conn:
    """The run's review tables as its site records before ``seq`` made them."""
    scratch = sqlite3.connect(":memory:", isolation_level=None)
    for statement in REVIEW_STATEMENTS:
        scratch.execute(statement)
    for record in records:
        if record.seq >= seq:
            break
        payload = record.payload
        if type(payload) in _REVIEW_KINDS and getattr(payload, "run_id", None) == run_id:
            ref = SiteRef(seq=record.seq, hash=record.hash)
            apply_review_projection(scratch, payload, ref, record.wall_time_ns)
    return scratch


def _bodies(records: Sequence[_Record], run_id: str, seq: int) -> dict[str, QcResultBody]:
    """The run's QC results as recorded before ``seq`` (entries and imports)."""
    found: dict[str, QcResultBody] = {}
    for record in records:
        if record.seq >= seq:
            break
        payload = record.payload
        if isinstance(payload, QcResultEntered) and payload.run_id == run_id:
            found[payload.result.result_id] = payload.result
        elif isinstance(payload, QcResultsImported) and payload.run_id == run_id:
            found.update((body.result_id, body) for body in payload.results)
    return found


def _release_reasons(
    facts: BatchFacts, deviations: Sequence[DeviationRow], results: Sequence[QcRow], by: str
) -> list[str]:
    """What stood against a release at its moment (the rules of
    :mod:`cellauto.review.disposition` that the records alone decide)."""
    reasons: list[str] = []
    if facts.ended is None or facts.ended.final_state != "Complete":
        reasons.append("the run had not ended Complete")
    if facts.plan is None or not facts.plan.tests:
        reasons.append("the run had no release plan")
    reasons.extend(f"{d.deviation_id} was {d.status}" for d in deviations if not d.terminal)
    valid = {row.test: row for row in results if row.status == "valid"}
    for test in facts.plan.tests if facts.plan is not None else []:
        row = valid.get(test.name)
        if not test.required:
            continue
        if row is None:
            reasons.append(f"{test.name} had no valid result")
        elif row.verdict != "pass":
            reasons.append(f"{test.name} was out of specification ({row.result_id})")
        elif row.source == "manual" and row.verified_by is None:
            reasons.append(f"{test.name} was not verified by a second person ({row.result_id})")
    if by in facts.performed_by:
        reasons.append(f"{by} had performed a task of the batch")
    reasons.extend(f"{by} had entered {r.result_id}" for r in results if r.entered_by == by)
    return reasons


def _decision_problem(
    conn: Conn, records: Sequence[_Record], record: _Record, p: BatchDisposed
) -> str | None:
    """The certificate rebuilt, and a release's rules rechecked, as of the decision."""
    seq = record.seq
    try:
        facts = batch_facts_in(conn, p.run_id)
    except RunNotFoundError:
        return f"site record {seq} decides run {p.run_id}, which has no records"
    scratch = _review_as_of(records, p.run_id, seq)
    try:
        deviations = read_deviations(conn, run_id=p.run_id, rows_from=scratch)
        results = read_qc_results(scratch, p.run_id)
    finally:
        scratch.close()
    rebuilt = build_coa(
        facts,
        results,
        deviations,
        decision=p.decision,
        decided_by=p.by,
        decided_at=datetime.fromtimestamp(record.wall_time_ns / 1e9, tz=UTC),
        bodies=_bodies(records, p.run_id, seq),
    )
    if rebuilt != p.coa:
        fields = [k for k in type(rebuilt).model_fields if getattr(rebuilt, k) != getattr(p.coa, k)]
        return (
            f"site record {seq}: its certificate of analysis is not what the records said at"
            f" the decision (differs in {', '.join(fields)})"
        )
    if p.decision == "released":
        reasons = _release_reasons(facts, deviations, results, p.by)
        if reasons:
            return f"site record {seq} released batch {p.run_id} while {reasons[0]}"
    return None


def _run_problem(conn: Conn, seq: int, disposed: BatchDisposed) -> str | None:
    head = disposed.run_head
    row = conn.execute(
        "SELECT hash FROM records WHERE run_id = ? AND seq = ?", (disposed.run_id, head.seq)
    ).fetchone()
    if row is None or row[0] != head.hash:
        return (
            f"site record {seq} decides run {disposed.run_id} at record #{head.seq},"
            " which the run does not hold"
        )
    later = conn.execute(
        "SELECT max(seq) FROM records WHERE run_id = ?", (disposed.run_id,)
    ).fetchone()
    if later[0] != head.seq:
        return (
            f"site record {seq} decided run {disposed.run_id} at record #{head.seq}, but the"
            f" run has records up to #{later[0]}"
        )
    if disposed.decision == "released":
        for (body,) in conn.execute(
            "SELECT body FROM records WHERE run_id = ? AND kind = 'task_answered'",
            (disposed.run_id,),
        ):
            signature = orjson.loads(body)["payload"].get("signature") or {}
            if signature.get("signer") == disposed.by and not signature.get("simulated"):
                return f"site record {seq}: {disposed.by} released a batch they performed a task of"
    return None


def disposition_problem(conn: Conn, records: Sequence[_Record]) -> str | None:
    """The first disposition the records contradict, or None."""
    decided: dict[str, int] = {}
    signatures: dict[int, list[Signature]] = {}
    for record in records:
        if isinstance(record.payload, Signature) and record.payload.signed.chain == SITE_CHAIN:
            signatures.setdefault(record.payload.signed.seq, []).append(record.payload)
    for record in records:
        disposed = record.payload
        if not isinstance(disposed, BatchDisposed):
            continue
        seq = record.seq
        if disposed.run_id in decided:
            return (
                f"site record {seq} decides run {disposed.run_id} again (site record"
                f" {decided[disposed.run_id]} decided it)"
            )
        decided[disposed.run_id] = seq
        if coa_sha256(disposed.coa) != disposed.coa_sha256:
            return f"site record {seq}: its certificate of analysis does not match its SHA-256"
        meaning = Meaning.RELEASED if disposed.decision == "released" else Meaning.REJECTED
        if not any(
            s.signer == disposed.by and s.meaning == meaning for s in signatures.get(seq, [])
        ):
            return (
                f"site record {seq}: the {disposed.decision} decision has no"
                f" {meaning.value} signature of {disposed.by}"
            )
        problem = _run_problem(conn, seq, disposed) or _decision_problem(
            conn, records, record, disposed
        )
        if problem is not None:
            return problem
    return None
