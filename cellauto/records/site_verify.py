"""Verify the site chain (accounts, training, signatures) and name its first problem.

The rules, checked in this order; the first problem found is reported
(``site: BROKEN at record N: ...``):

1. the chain itself, by the run chain's rules 1-5
   (:mod:`cellauto.records.chain_check`): seqs contiguous from 0, each hash matches its
   body, the body canonical, each prev link, the columns as hashed, and every kind a
   site record kind whose payload parses as its model;
2. every site record is covered by a verified ``site_anchor`` ledger entry, and each
   anchor's record has the anchored hash. Every commit that adds site records anchors
   its last one, so records after the last anchor were inserted (or their commit's
   anchor deleted), and an anchor naming a record that is not there means the chain's
   tail was cut; a ledger entry naming the site chain that is forged, edited or out of
   the ledger's chain is a problem of the site chain too;
3. the stored projections (accounts, credentials, training, site policy) are what
   replaying the chain gives: a hook (``site_replay``) the site layer provides, called
   with every site record once rules 1 and 2 hold;
4. every ``signature`` record's ``signed`` reference resolves to a stored run or site
   record whose stored hash and recomputed hash equal the reference's hash (and of the
   kind it names); a site record is signed only after it was written;
7. every ``tasks`` row with an answer names a ``task_answer`` site record of that task
   and run, and every ``run_requests`` row the ``run_command_requested`` site record (by
   seq and hash) of that request, run and command. (An edited row can only hide a task,
   which its timeout then reports.)

Rule 5 (authority at signing) is the site layer's: it comes with the replay hook. Rule 6
(every signature a run record embeds is its site record's, signing that run's record; a
simulated operator's only in a run answered by simulated operators) is checked run by
run (:mod:`cellauto.records.signature_check`), and reported on the run's line of
``cellauto verify`` as the run's problem (rule 10 of :mod:`cellauto.records.verify`):
it is the run record that disagrees with the site chain, whichever of them was
changed.

Records of a run called ``"site"`` in the runs' table are reported by
:mod:`cellauto.records.verify` as a broken run: the name is reserved.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from cellauto.records import _sqlite
from cellauto.records._schema import is_missing_table
from cellauto.records._sqlite import StoredRow
from cellauto.records.backend import Conn
from cellauto.records.canonical import record_hash
from cellauto.records.chain_check import check_rows, record_name
from cellauto.records.ledger_check import LedgerCheck, Mark, marks_problem
from cellauto.records.refs import SITE_CHAIN, RecordRef
from cellauto.records.site_chain import SiteRecord, site_rows
from cellauto.records.site_payloads import (
    SITE_PAYLOAD_TYPES,
    RunCommandRequested,
    Signature,
    SiteKind,
    SitePayload,
    TaskAnswer,
)

__all__ = ["SiteReplay", "SiteReport", "SiteRows", "verify_site"]

SiteReplay = Callable[[Conn, Sequence[SiteRecord]], str | None]
"""``(conn, every site record)`` -> the first difference between the stored projections
and those the records give (in words), or None when they agree."""

_Problem = tuple[int | None, str]
_SITE_KINDS = {kind.value: SITE_PAYLOAD_TYPES[kind] for kind in SiteKind}


class SiteReport(BaseModel):
    """The verdict on the site chain."""

    model_config = ConfigDict(frozen=True)

    intact: bool
    records: int
    """Site records stored."""
    head_hash: str | None
    """Hash of the last stored site record; None when there is none."""
    anchored_seq: int | None
    """The last site record covered by a verified site anchor; None when none is."""
    first_broken_seq: int | None
    """The first site record changed, removed or added (None: intact, or the problem is
    not one record's, e.g. an edited projection)."""
    reason: str | None
    """What is wrong, in words; None when intact."""

    def describe(self) -> str:
        """One line for ``cellauto verify``."""
        if not self.intact:
            where = "" if self.first_broken_seq is None else f" at record {self.first_broken_seq}"
            return f"site: BROKEN{where}: {self.reason}"
        if not self.records:
            return "site: no records"
        return f"site: intact, {self.records} records, head {self.head_hash}"


class SiteRows:
    """The rows of the site chain (``site_records``) as a chain checker reads them."""

    chain = SITE_CHAIN

    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    def stored_rows(self) -> Iterator[StoredRow]:
        return site_rows(self._conn)

    def seqs_where(self, column: str, value: str) -> list[int]:
        if column not in ("hash", "prev_hash"):
            raise ValueError(f"seqs_where: column must be hash or prev_hash, not {column!r}")
        query = f"SELECT seq FROM site_records WHERE {column} = ? ORDER BY seq"
        return [seq for (seq,) in self._select(query, (value,))]

    def hashes_at(self, seqs: list[int]) -> dict[int, str]:
        found: dict[int, str] = {}
        for seq in seqs:
            rows = self._select("SELECT hash FROM site_records WHERE seq = ?", (seq,))
            if rows:
                found[seq] = rows[0][0]
        return found

    def payload_model(self, kind: str) -> type[BaseModel] | None:
        return _SITE_KINDS.get(kind)

    def row_at(self, seq: int) -> StoredRow | None:
        rows = self._select(
            "SELECT seq, kind, process_time_s, wall_time_ns, body, prev_hash, hash"
            " FROM site_records WHERE seq = ?",
            (seq,),
        )
        return StoredRow(*rows[0]) if rows else None

    def _select(self, query: str, args: tuple[object, ...]) -> list[Any]:
        try:
            return self._conn.execute(query, args).fetchall()
        except sqlite3.OperationalError as exc:
            if is_missing_table(exc):
                return []
            raise


def verify_site(
    conn: Conn, ledger: LedgerCheck, *, site_replay: SiteReplay | None = None
) -> SiteReport:
    """Check the site chain against the checked ledger (one read transaction: the caller's)."""
    source = SiteRows(conn)
    records: list[SiteRecord] = []

    def keep(row: StoredRow, payload: BaseModel) -> None:
        if isinstance(payload, SitePayload):  # always: the site kinds' models
            kind = SiteKind(row.kind)
            records.append(
                SiteRecord(row.seq, kind, row.wall_time_ns, payload, row.prev_hash, row.hash)
            )

    walk = check_rows(source, on_row=keep)
    problem: _Problem | None = walk.problem
    covered = [mark.run_seq for mark in ledger.site]
    if problem is None:
        problem = _ledger_problem(ledger)
    if problem is None:
        problem = _check_anchors(source, walk.last, ledger.site)
    if problem is None and walk.records:
        problem = _check_signatures(conn, source, records)
        if problem is None:
            problem = _check_answer_rows(conn, records)
        if problem is None and site_replay is not None:
            replayed = site_replay(conn, records)
            problem = None if replayed is None else (None, replayed)
    return SiteReport(
        intact=problem is None,
        records=walk.records,
        head_hash=None if walk.last is None else walk.last.hash,
        anchored_seq=max(covered) if covered else None,
        first_broken_seq=None if problem is None else problem[0],
        reason=None if problem is None else problem[1],
    )


def _ledger_problem(ledger: LedgerCheck) -> _Problem | None:
    """A ledger entry naming the site chain is forged, edited or out of the ledger's chain."""
    for problem in ledger.problems_of(SITE_CHAIN):
        below = [
            m.run_seq for m in ledger.site if problem.run_seq is None or m.run_seq < problem.run_seq
        ]
        first = max(below) + 1 if below else 0
        if first:
            return first, (
                f"{problem.reason}; the site records after record {first - 1} are not covered "
                "by a valid signature"
            )
        return first, problem.reason
    return None


def _check_anchors(source: SiteRows, last: StoredRow | None, marks: list[Mark]) -> _Problem | None:
    """Rule 2: each anchor's record has the anchored hash, and no record is left uncovered."""
    stored = source.hashes_at(sorted({mark.run_seq for mark in marks}))
    last_seq = -1 if last is None else last.seq
    problem = marks_problem(
        marks,
        stored,
        last_seq,
        subject="the site chain was",
        verb=lambda mark: "anchored",
        noun="a site record",
    )
    if problem is not None:
        return problem
    covered = max((mark.run_seq for mark in marks), default=-1)
    if last_seq > covered:
        first = covered + 1
        what = f"record {first} is" if first == last_seq else f"records {first} to {last_seq} are"
        return first, (
            f"site {what} not covered by any signed site anchor in the ledger: every commit "
            "of site records anchors its last one, so they were added by someone without the "
            "signing key (or the ledger entries anchoring them were deleted)"
        )
    return None


def _check_signatures(conn: Conn, source: SiteRows, records: list[SiteRecord]) -> _Problem | None:
    """Rule 4: every signature's reference resolves to the record it signed, unchanged."""
    for record in records:
        if isinstance(record.payload, Signature):
            why = _unresolved(conn, source, record.payload.signed, record.seq)
            if why is not None:
                return record.seq, f"{record_name(record.seq, record.kind.value)}: {why}"
    return None


def _unresolved(conn: Conn, source: SiteRows, ref: RecordRef, signed_at_seq: int) -> str | None:
    """Why ``ref`` does not name a stored record with its hash; None when it does."""
    if ref.chain == "site":
        what = f"site record {ref.seq} ({ref.kind})"
        if ref.seq >= signed_at_seq:
            return f"it signs {what}, which was written after the signature — reordered"
        row = source.row_at(ref.seq)
    else:
        what = f"record {ref.seq} ({ref.kind}) of run {ref.run_id}"
        if ref.run_id is None:
            return f"it signs run record {ref.seq} ({ref.kind}) without naming the run — edited"
        row = _sqlite.row_at(conn, ref.run_id, ref.seq)
    if row is None:
        return f"it signs {what}, which is not in the journal — the signed record was deleted"
    if row.kind != ref.kind:
        return f"it signs {what}, but that record is a {row.kind} — the record was replaced"
    if row.hash != ref.hash or record_hash(str(row.body).encode()) != ref.hash:
        return (
            f"it signs {what} with hash {ref.hash[:16]}…, but that record's hash is not it — "
            "the signed record was changed after it was signed"
        )
    return None


def _check_answer_rows(conn: Conn, records: list[SiteRecord]) -> _Problem | None:
    """Rule 7: the ``tasks`` and ``run_requests`` rows point at matching site records."""
    by_seq = {record.seq: record for record in records}
    tasks = "SELECT task_id, run_id, answer_site_seq FROM tasks WHERE answer_site_seq IS NOT NULL"
    for task_id, run_id, seq in _rows(conn, tasks):
        record = by_seq.get(seq)
        answer = None if record is None else record.payload
        if not (
            isinstance(answer, TaskAnswer) and (answer.task_id, answer.run_id) == (task_id, run_id)
        ):
            found = "is not there" if record is None else f"is a {_described(record)}"
            return None, (
                f"tasks table edited: task {task_id} of run {run_id} names site record {seq} "
                f"as its answer, but that record {found}"
            )
    requests = "SELECT request_id, run_id, command, site_seq, site_hash FROM run_requests"
    for request_id, run_id, command, seq, digest in _rows(conn, requests):
        record = by_seq.get(seq)
        asked = None if record is None else record.payload
        if not (
            record is not None
            and record.hash == digest
            and isinstance(asked, RunCommandRequested)
            and (asked.request_id, asked.run_id, asked.command) == (request_id, run_id, command)
        ):
            found = "is not there" if record is None else f"is a {_described(record)}"
            return None, (
                f"run_requests table edited: request {request_id} ({command} of run {run_id}) "
                f"names site record {seq}, but that record {found}"
                + ("" if record is None or record.hash == digest else " with another hash")
            )
    return None


def _described(record: SiteRecord) -> str:
    payload = record.payload
    if isinstance(payload, TaskAnswer):
        return f"task_answer of task {payload.task_id} of run {payload.run_id}"
    if isinstance(payload, RunCommandRequested):
        return f"request {payload.request_id} ({payload.command} of run {payload.run_id})"
    return record.kind.value


def _rows(conn: Conn, query: str) -> list[Any]:
    try:
        return conn.execute(query).fetchall()
    except sqlite3.OperationalError as exc:
        if is_missing_table(exc):
            return []
        raise
