"""QA's disposition of a batch: release or reject, signed, with every reason to refuse.

A release is refused for every reason :mod:`cellauto.review.release_rules` finds.

:func:`dispose_batch` verifies the journal on a read snapshot first (a large site takes
seconds to replay, and the write lock would stop every writer meanwhile), then takes the
write lock: if neither the site chain nor the run gained a record since, that
verification stands, else it is made again under the lock. The rules are evaluated
there, then the ``batch_disposed`` record (with the
certificate of analysis and its SHA-256) and QA's signature (``released`` or
``rejected``) are written with the ``dispositions`` row, or nothing is. A refused release
is journaled as ``review_act_refused`` listing every reason. A rejection is always
possible (a bad batch must be rejectable) once the run has ended, except twice, or
without a reason (a running batch is stopped or aborted first).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal, NamedTuple

from cellauto.errors import BadInputError, ReleaseRefusedError, RunNotFoundError
from cellauto.records import Journal
from cellauto.records.backend import Conn
from cellauto.records.refs import Meaning, RecordRef, SiteRef
from cellauto.records.site_payloads_review import (
    BatchDisposed,
    CertificateOfAnalysis,
    ReleaseProblem,
)
from cellauto.records.site_store import SiteStore, SiteTx
from cellauto.review._acting import (
    ReviewActing,
    check_actor,
    payload,
    run_review_act,
    sign_act,
)
from cellauto.review.batch_facts import batch_facts
from cellauto.review.coa import build_coa, coa_sha256
from cellauto.review.read import qc_result_bodies, read_deviations, read_qc_results
from cellauto.review.release_rules import (
    RELEASE_RULES,
    RuleContext,
    disposed_problems,
    journal_problems,
    problem,
    release_problems,
    review_row_problems,
)
from cellauto.site.auth import Authenticated
from cellauto.site.roles import Permission

__all__ = [
    "RELEASE_RULES",
    "Disposition",
    "dispose_batch",
    "release_problems",
]

Decision = Literal["release", "reject"]


class Disposition(NamedTuple):
    """QA's decision: its ``batch_disposed`` record, its signature and the certificate."""

    record: SiteRef
    signature: SiteRef
    coa: CertificateOfAnalysis


def _heads(conn: Conn, run_id: str) -> tuple[object, ...]:
    """The site chain's and the run's last records: what a verification was of."""
    site = conn.execute("SELECT seq, hash FROM site_records ORDER BY seq DESC LIMIT 1").fetchone()
    run = conn.execute(
        "SELECT seq, hash FROM records WHERE run_id = ? ORDER BY seq DESC LIMIT 1", (run_id,)
    ).fetchone()
    return (tuple(site or ()), tuple(run or ()))


class _Verified(NamedTuple):
    heads: tuple[object, ...]
    problems: list[ReleaseProblem]


def _verify_before(store: SiteStore, journal: Journal, run_id: str) -> _Verified | None:
    """Verify the journal on a read snapshot, before the write lock is taken: a large site
    takes seconds to replay, and every writer (the runs' controllers too) would wait."""
    with store.reading() as conn:
        try:
            facts = batch_facts(journal, run_id)
        except RunNotFoundError:
            return None  # refused under the lock, journaled there
        return _Verified(
            _heads(conn, run_id), journal_problems(RuleContext(journal, conn, facts, None))
        )


def refusal_text(run_id: str, problems: Sequence[ReleaseProblem]) -> str:
    """``release refused for batch ... (3 reasons):`` and one line per reason."""
    lines = [f"release refused for batch {run_id} ({len(problems)} reasons):"]
    lines.extend(f"  {p.code:<22} {p.detail}" for p in problems)
    return "\n".join(lines)


def _site_head(conn: Conn) -> SiteRef | None:
    row = conn.execute("SELECT seq, hash FROM site_records ORDER BY seq DESC LIMIT 1").fetchone()
    return None if row is None else SiteRef(seq=row[0], hash=row[1])


def dispose_batch(
    store: SiteStore,
    journal: Journal,
    who: Authenticated,
    run_id: str,
    *,
    decision: Decision,
    reason: str = "",
) -> Disposition:
    """Release or reject the batch of ``run_id`` as ``who`` (QA), signed.

    Refused with :class:`~cellauto.errors.ReleaseRefusedError` (every reason in its
    ``problems``), :class:`~cellauto.errors.ReviewRefusedError` or
    :class:`~cellauto.errors.PermissionRefusedError`, the refusal journaled first."""
    if decision not in ("release", "reject"):
        raise BadInputError(f"decision {decision!r} is neither release nor reject")
    if decision == "reject" and not reason.strip():
        raise BadInputError("a rejection needs --reason (why the batch is rejected)")
    acting = ReviewActing(who, decision, run_id, run_id, reason)
    meaning = Meaning.RELEASED if decision == "release" else Meaning.REJECTED
    before = _verify_before(store, journal, run_id) if decision == "release" else None

    def body(tx: SiteTx) -> Disposition:
        check_actor(tx, acting, Permission.BATCH_RELEASE)
        try:
            facts = batch_facts(journal, run_id)
        except RunNotFoundError as exc:
            raise acting.refused("unknown_run", str(exc)) from None
        if decision == "release":
            # the snapshot's verification holds if nothing was appended since (the lock
            # now keeps it so); else verify again, under the lock
            verified = None
            if before is not None and before.heads == _heads(tx.conn, run_id):
                verified = [p for p in before.problems if p.subject != "review records"]
                # the run's review rows are read again under the lock: confirm them there
                verified += review_row_problems(RuleContext(journal, tx.conn, facts, None))
            problems = release_problems(
                journal,
                tx.conn,
                run_id,
                releaser=who.account.name,
                facts=facts,
                verified=verified,
            )
        else:
            problems = disposed_problems(RuleContext(journal, tx.conn, facts, None))
            if facts.ended is None:  # decided at its end: verify holds it to that record
                problems.append(
                    problem(
                        "run_not_complete",
                        "run",
                        f"the run has not ended (its last record is #{facts.head_seq}): a"
                        " running batch is stopped or aborted first, then rejected",
                        f"r{facts.head_seq}",
                    )
                )
        if problems:
            text = refusal_text(run_id, problems)
            if decision == "reject":
                text = f"reject refused for batch {run_id}: {problems[0].detail}"
            raise acting.refused(
                "refused", text, reasons=problems, exc=ReleaseRefusedError(text, list(problems))
            )
        decided: Literal["released", "rejected"] = (
            "released" if decision == "release" else "rejected"
        )
        coa = build_coa(
            facts,
            read_qc_results(tx.conn, run_id),
            read_deviations(tx.conn, run_id=run_id),
            decision=decided,
            decided_by=who.account.name,
            decided_at=datetime.fromtimestamp(tx.wall_time_ns / 1e9, tz=UTC),
            bodies=qc_result_bodies(tx.conn, run_id),
        )
        head_kind = journal.records(run_id)[-1].kind.value if facts.head_seq else "run_started"
        record = payload(
            lambda: BatchDisposed(
                by=who.account.name,
                reason=reason,
                terminal=who.terminal,
                run_id=run_id,
                decision=decided,
                simulated=facts.simulated,
                run_head=RecordRef(
                    chain="run",
                    run_id=run_id,
                    seq=facts.head_seq,
                    hash=facts.head_hash,
                    kind=head_kind,
                ),
                site_verified_through=_site_head(tx.conn),
                checked=list(RELEASE_RULES) if decision == "release" else [],
                deviations=[d.deviation_id for d in coa.deviations],
                results=[line.result_id for line in coa.lines if line.result_id],
                coa=coa,
                coa_sha256=coa_sha256(coa),
            ),
            f"the {decision} of batch {run_id}",
        )
        ref = tx.append(record)
        batch = facts.din or run_id
        statement = (
            f"I release batch {batch} ({coa.product}, COI {coa.coi}) for infusion"
            if decision == "release"
            else f"I reject batch {batch} ({coa.product}, COI {coa.coi}): {reason}"
        )
        signature = sign_act(
            tx, acting, ref, record, meaning, statement, permission=Permission.BATCH_RELEASE
        )
        return Disposition(ref, signature, coa)

    return run_review_act(store, acting, body)
