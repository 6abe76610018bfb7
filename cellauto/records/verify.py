"""Verify a run's hash chain and name the first record that was tampered with.

For each stored row of a run, in seq order, the verifier checks that:

1. seqs are contiguous from 0 (a gap means deleted records), and no record lies
   beyond the sealed last seq (added after the seal);
2. sha256 of the stored body equals the stored hash (else the record was edited);
3. the body is a JSON object with exactly the seven body keys, in canonical form
   (re-serializing it gives the same bytes);
4. the body's ``prev_hash`` is the previous record's hash (the genesis hash for
   seq 0). When it is not, the verifier looks at the rest of the run to say why:
   the record chains to an earlier record (records were inserted), to a later one
   (reordered), its body carries another seq (renumbered after a deletion or an
   insertion), another record chains to the previous one (this record is out of
   place), or else the previous record was edited and its hash recomputed (which
   cannot be told apart from its successor removed and all later records rewritten);
5. the body's run_id, seq, kind, process_time_s, wall_time_ns and prev_hash equal
   the row's columns;

and then, against the entries of the journal's signed ledger that verify with the
trusted public key (:mod:`cellauto.records.ledger_check`):

6. the run has a ``run_begun`` entry with the hash of its record 0 (else the run
   was inserted, or its entries deleted);
7. every anchor's and the seal's record exists and has the anchored hash (else the
   tail was cut, or the chain was rewritten after the last good anchor);
8. a sealed run ends exactly at its sealed record, sealed no earlier than its last
   record's wall time; a run whose last record is ``run_ended`` has a seal;
9. no ledger entry that names the run is forged, edited or out of its chain;

and, against the site chain (:mod:`cellauto.records.signature_check`; the site
chain's rule 6):

10. every signature a record embeds is confirmed by its site record (same signer,
    printed name, meaning and time; the site record unchanged) and that site record
    signs this run's record it should (``task_opened`` for an answer, ``task_answered``
    for a verification, the request or the deviation for a command); a simulated
    operator's signature only in a run answered by simulated operators.

The first problem found is reported. What an attacker without the signing key can
still do unnoticed: cut or rewrite the records of a run that is not sealed after
its last anchor (at most :class:`~cellauto.records.ledger.AnchorPolicy` records or
minutes), or put back an older copy of the whole file (``--head`` catches that).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from cellauto.errors import RunNotFoundError
from cellauto.records import _sqlite
from cellauto.records import backend as db
from cellauto.records._sqlite import StoredRow
from cellauto.records.backend import Conn
from cellauto.records.chain_check import RunRows, check_rows, record_name
from cellauto.records.ledger_check import LedgerCheck, Mark, RunMarks, check_ledger, marks_problem
from cellauto.records.refs import SITE_CHAIN
from cellauto.records.signature_check import check_run_signatures
from cellauto.records.site_verify import SiteReplay, SiteReport, verify_site

if TYPE_CHECKING:
    from pathlib import Path

    from cellauto.records.journal import Journal

__all__ = [
    "ChainReport",
    "JournalReport",
    "verify_all",
    "verify_journal",
    "verify_run",
]

_Problem = tuple[int, str]


class ChainReport(BaseModel):
    """The result of verifying one run's chain."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    intact: bool
    records: int
    """Rows stored for the run."""
    first_broken_seq: int | None
    """The first record that was changed, removed or added; None when intact."""
    reason: str | None
    """What is wrong with that record, in words; None when intact."""
    head_hash: str | None
    """Hash of the last stored record; None if the run has no records."""
    sealed: bool
    """The run has a seal in the ledger that verifies."""
    ended: bool = False
    """The last stored record is the run's run_ended record."""
    anchored_seq: int | None = None
    """The last record covered by a verified ledger entry (begun, anchor or seal)."""


class JournalReport(BaseModel):
    """Every run of a journal, and its ledger."""

    model_config = ConfigDict(frozen=True)

    runs: list[ChainReport]
    ledger: LedgerCheck
    site: SiteReport

    @property
    def intact(self) -> bool:
        return self.ledger.intact and self.site.intact and all(r.intact for r in self.runs)


def verify_run(
    journal: Journal,
    run_id: str,
    *,
    public_key: Path | None = None,
    ledger: LedgerCheck | None = None,
) -> ChainReport:
    """Verify one run (exact id; see :meth:`Journal.resolve_run_id` for prefixes).

    ``public_key``: the trusted ``.pub`` file (default: beside the default signing
    key, else the journal's own copy); ``ledger``: a ledger check already made.
    """
    conn = journal._read()
    with _snapshot(conn):
        return _verify_run(journal, conn, run_id, public_key, ledger)


def _verify_run(
    journal: Journal,
    conn: Conn,
    run_id: str,
    public_key: Path | None,
    ledger: LedgerCheck | None,
) -> ChainReport:
    if ledger is None:
        ledger = check_ledger(conn, public_key)
    marks = ledger.marks_of(run_id)
    walk = check_rows(RunRows(conn, run_id), None if marks.sealed is None else marks.sealed.run_seq)
    count, prev, problem = walk
    if run_id == SITE_CHAIN:
        problem = (
            0,
            (
                f"records of a run called {SITE_CHAIN!r}: that is the site chain's name and no run "
                "may be called so — the records were inserted by something other than cellauto"
            ),
        )
    if count == 0 and marks.begun is None and not marks.anchors and not ledger.problems_of(run_id):
        raise RunNotFoundError(f"no run {run_id!r} in {journal.location}")
    if problem is None:
        problem = _check_ledger_of(ledger, run_id, marks)
    if problem is None:
        problem = _check_marks(conn, run_id, prev, marks)
    if run_id != SITE_CHAIN and count:
        problem = _with_signatures(conn, run_id, problem)
    covered = [m.run_seq for m in (marks.begun, *marks.anchors) if m is not None]
    return ChainReport(
        run_id=run_id,
        intact=problem is None,
        records=count,
        first_broken_seq=None if problem is None else problem[0],
        reason=None if problem is None else problem[1],
        head_hash=None if prev is None else prev.hash,
        sealed=marks.sealed is not None,
        ended=prev is not None and prev.kind == "run_ended",
        anchored_seq=max(covered) if covered else None,
    )


def verify_journal(
    journal: Journal,
    *,
    public_key: Path | None = None,
    head: str | None = None,
    site_replay: SiteReplay | None = None,
) -> JournalReport:
    """Verify the ledger, every run (runs named only by the ledger included) and the
    site chain (:mod:`cellauto.records.site_verify`).

    ``head``: a ledger head hash kept outside the file; the ledger must contain it.
    ``site_replay``: rebuilds the site projections from the site chain and names the
    first difference from the stored ones (the site layer provides it).
    """
    conn = journal._read()
    with _snapshot(conn):
        ledger = check_ledger(conn, public_key, head)
        named = set(ledger.marks) | {p.run_id for p in ledger.problems if p.run_id is not None}
        named.discard(SITE_CHAIN)  # ledger entries naming the site chain are the site's
        run_ids = set(_sqlite.run_ids(conn)) | named
        runs = [verify_run(journal, run_id, ledger=ledger) for run_id in sorted(run_ids)]
        site = verify_site(conn, ledger, site_replay=site_replay)
    return JournalReport(runs=runs, ledger=ledger, site=site)


@contextmanager
def _snapshot(conn: Conn) -> Iterator[None]:
    """Read everything in one transaction: one consistent state of the file (WAL), so
    that a run being written meanwhile is never taken for a tampered one."""
    if conn.in_transaction:  # already inside one (verify_journal → verify_run)
        yield
        return
    db.begin_read(conn)
    try:
        yield
    finally:
        conn.execute("COMMIT")


def verify_all(journal: Journal, *, public_key: Path | None = None) -> list[ChainReport]:
    """Verify every run in the journal (see :func:`verify_journal` for the ledger too)."""
    return verify_journal(journal, public_key=public_key).runs


_name = record_name


def _with_signatures(conn: Conn, run_id: str, problem: _Problem | None) -> _Problem | None:
    """Rule 10: each signature the run's records embed is its site record's, signing this
    run's record (:mod:`cellauto.records.signature_check`). When the chain is already
    broken at a record whose signature disagrees too, the reason says so."""
    unconfirmed = [f for f in check_run_signatures(conn, run_id) if not f.confirmed]
    if not unconfirmed:
        return problem
    if problem is None:
        first = unconfirmed[0]
        return first.run_seq, f"{_name(first.run_seq, first.record_kind)}: {first.problem}"
    at_problem = [f for f in unconfirmed if f.run_seq == problem[0]]
    if at_problem:
        return problem[0], f"{problem[1]}; and {at_problem[0].problem}"
    return problem


def _check_ledger_of(ledger: LedgerCheck, run_id: str, marks: RunMarks) -> _Problem | None:
    """A ledger entry naming this run is forged, edited or out of the ledger's chain."""
    for problem in ledger.problems_of(run_id):
        trusted = [m.run_seq for m in (marks.begun, *marks.anchors) if m is not None]
        before = [
            seq
            for seq in trusted
            if seq < (1 << 62 if problem.run_seq is None else problem.run_seq)
        ]
        first = max(before) + 1 if before else 0
        return first, (
            f"{problem.reason}; the records after record {first - 1} are not covered by a "
            "valid signature"
            if first
            else problem.reason
        )
    return None


def _marked(mark: Mark) -> str:
    """What a ledger entry did to the run's record: begun, anchored or sealed."""
    if mark.kind.value == "run_begun":
        return "begun"
    return "sealed" if mark.sealed_wall_time_ns is not None else "anchored"


def _check_marks(
    conn: Conn, run_id: str, last: StoredRow | None, marks: RunMarks
) -> _Problem | None:
    """Hold the run's records against its verified ledger entries (begun, anchors, seal)."""
    if marks.begun is None:
        return 0, (
            f"run {run_id} has no verified 'run begun' entry in the ledger: its records were "
            "inserted by someone without the signing key, or its ledger entries were deleted"
        )
    wanted = sorted({m.run_seq for m in (marks.begun, *marks.anchors)})
    stored = _sqlite.hashes_at(conn, run_id, wanted)
    if last is None:
        return 0, (
            f"the run was begun at record {marks.begun.run_seq} (ledger entry "
            f"{marks.begun.entry_seq}) but has no records: all were deleted"
        )
    problem = marks_problem(
        [marks.begun, *marks.anchors],
        stored,
        last.seq,
        subject="the run was",
        verb=_marked,
        noun="a record",
    )
    if problem is not None:
        return problem
    sealed = marks.sealed
    if (
        last is not None
        and sealed is not None
        and (sealed.sealed_wall_time_ns or 0) < last.wall_time_ns
    ):
        return last.seq, (
            f"{_name(last.seq, last.kind)}: the run's seal (ledger entry "
            f"{sealed.entry_seq}) is dated before this record's wall time"
        )
    if last is not None and sealed is None and last.kind == "run_ended":
        return last.seq, (
            f"{_name(last.seq, last.kind)}: the run ended but has no verified seal in the "
            "ledger — its seal was deleted, or its writer stopped between the end and the seal"
        )
    return None
