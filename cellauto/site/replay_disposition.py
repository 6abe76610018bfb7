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
  projection is written; here the chain itself is checked).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Protocol

import orjson

from cellauto.records.refs import SITE_CHAIN, Meaning
from cellauto.records.site_payload_base import SitePayload
from cellauto.records.site_payloads import Signature
from cellauto.records.site_payloads_review import BatchDisposed
from cellauto.review.coa import coa_sha256

__all__ = ["disposition_problem"]


class _Record(Protocol):
    @property
    def seq(self) -> int: ...
    @property
    def hash(self) -> str: ...
    @property
    def payload(self) -> SitePayload: ...


def _run_problem(conn: sqlite3.Connection, seq: int, disposed: BatchDisposed) -> str | None:
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


def disposition_problem(conn: sqlite3.Connection, records: Sequence[_Record]) -> str | None:
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
        problem = _run_problem(conn, seq, disposed)
        if problem is not None:
            return problem
    return None
