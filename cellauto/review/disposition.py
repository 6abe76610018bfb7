"""QA's disposition of a batch: release or reject, signed, with every reason to refuse.

A batch is released only when nothing stands against it. :func:`release_problems`
collects **every** reason (it never stops at the first), each a
:class:`~cellauto.records.site_payloads_review.ReleaseProblem` with a code:

=====================  ==============================================================
``journal_not_verifying``  the run's chain, the signed ledger or the site chain does not
                       verify, or a review row differs from its records
``run_not_complete``   the run has not ended, or ended other than Complete
``no_release_plan``    the run declared no release tests (or predates release plans)
``deviation_open``     a deviation of the run is not closed (or withdrawn)
``qc_missing``         a required release test has no valid result
``qc_oos``             a required test's valid result is out of specification
``qc_unverified``      a result entered by hand has no second person's verification
``signature_missing``  a signature the run embeds is missing, altered or simulated in
                       a run answered by people; a two-person task was never verified
``already_disposed``   the batch was released or rejected already (one decision a run)
``releaser_performed`` the releaser performed an act of the batch (a task, a QC entry)
=====================  ==============================================================

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

import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Literal, NamedTuple

from cellauto.errors import BadInputError, JournalError, ReleaseRefusedError, RunNotFoundError
from cellauto.records import Journal, verify_run
from cellauto.records.ledger_check import check_ledger
from cellauto.records.refs import Meaning, RecordRef, SiteRef
from cellauto.records.signature_check import Confirmation, check_run_signatures
from cellauto.records.site_payloads_review import (
    BatchDisposed,
    CertificateOfAnalysis,
    ReleaseProblem,
)
from cellauto.records.site_store import SiteStore, SiteTx
from cellauto.records.site_verify import verify_site
from cellauto.review._acting import (
    ReviewActing,
    check_actor,
    payload,
    run_review_act,
    sign_act,
)
from cellauto.review.batch_facts import BatchFacts, batch_facts
from cellauto.review.coa import build_coa, coa_sha256, shown_result
from cellauto.review.read import (
    confirm_run_review,
    qc_result_bodies,
    read_deviations,
    read_disposition,
    read_qc_results,
)
from cellauto.site.auth import Authenticated
from cellauto.site.replay import replay_problem
from cellauto.site.roles import Permission

__all__ = [
    "RELEASE_RULES",
    "Disposition",
    "dispose_batch",
    "release_problems",
]

Decision = Literal["release", "reject"]

_BAD_SIGNATURES = frozenset(
    {Confirmation.MISSING, Confirmation.ALTERED, Confirmation.SIMULATED_IN_REAL_RUN}
)


class Disposition(NamedTuple):
    """QA's decision: its ``batch_disposed`` record, its signature and the certificate."""

    record: SiteRef
    signature: SiteRef
    coa: CertificateOfAnalysis


class _Ctx(NamedTuple):
    journal: Journal
    conn: sqlite3.Connection
    facts: BatchFacts
    releaser: str | None


def _problem(code: str, subject: str, detail: str, where: str | None = None) -> ReleaseProblem:
    return ReleaseProblem(code=code, subject=subject, detail=detail, where=where)


def _journal(ctx: _Ctx) -> list[ReleaseProblem]:
    found: list[ReleaseProblem] = []
    ledger = check_ledger(ctx.conn, None)
    run = verify_run(ctx.journal, ctx.facts.run_id, ledger=ledger)
    if not run.intact:
        where = None if run.first_broken_seq is None else f"r{run.first_broken_seq}"
        found.append(_problem("journal_not_verifying", "run chain", str(run.reason), where))
    site = verify_site(ctx.conn, ledger, site_replay=replay_problem)
    if not site.intact:
        found.append(_problem("journal_not_verifying", "site chain", str(site.reason)))
    return found + _review_rows(ctx)


def _review_rows(ctx: _Ctx) -> list[ReleaseProblem]:
    """The run's review rows against the site records that set them."""
    try:
        confirm_run_review(ctx.conn, ctx.facts.run_id)
    except JournalError as exc:
        return [_problem("journal_not_verifying", "review records", str(exc))]
    return []


def _completion(ctx: _Ctx) -> list[ReleaseProblem]:
    facts = ctx.facts
    if facts.ended is None:
        return [
            _problem(
                "run_not_complete",
                "run",
                f"the run has not ended (its last record is #{facts.head_seq})",
                f"r{facts.head_seq}",
            )
        ]
    if facts.ended.final_state != "Complete":
        return [
            _problem(
                "run_not_complete",
                "run",
                f"the run ended {facts.ended.final_state}: {facts.ended.reason}",
                f"r{facts.head_seq}",
            )
        ]
    return []


def _plan(ctx: _Ctx) -> list[ReleaseProblem]:
    facts = ctx.facts
    started = f"{facts.started.protocol_name} {facts.started.protocol_version}"
    if facts.plan is None:
        return [_problem("no_release_plan", "release tests", f"{started} recorded no release plan")]
    if not facts.plan.tests:
        return [
            _problem(
                "no_release_plan",
                "release tests",
                f"{started} declares no release tests",
                f"r{facts.plan_seq}",
            )
        ]
    return []


def _deviations(ctx: _Ctx) -> list[ReleaseProblem]:
    return [
        _problem(
            "deviation_open",
            row.deviation_id,
            f"{row.deviation_id} ({row.classification or 'not classified'}) is {row.status},"
            f" not closed: {row.title}",
            row.deviation_id,
        )
        for row in read_deviations(ctx.conn, run_id=ctx.facts.run_id)
        if not row.terminal
    ]


def _qc(ctx: _Ctx) -> list[ReleaseProblem]:
    plan = ctx.facts.plan
    if plan is None:
        return []
    valid = {row.test: row for row in read_qc_results(ctx.conn, ctx.facts.run_id, valid_only=True)}
    found: list[ReleaseProblem] = []
    for test in plan.tests:
        if not test.required:
            continue
        row = valid.get(test.name)
        if row is None:
            found.append(_problem("qc_missing", test.name, f"{test.name}: no valid result"))
            continue
        if row.verdict != "pass":
            found.append(
                _problem(
                    "qc_oos",
                    test.name,
                    f"{test.name} {shown_result(row)} {test.spec_unit} is out of specification"
                    f" ({row.result_id})",
                    row.result_id,
                )
            )
        if row.source == "manual" and row.verified_by is None:
            found.append(
                _problem(
                    "qc_unverified",
                    test.name,
                    f"{test.name} entered by {row.entered_by}, not verified by a second person"
                    f" ({row.result_id}: `cellauto qc verify`)",
                    row.result_id,
                )
            )
    return found


def _signatures(ctx: _Ctx) -> list[ReleaseProblem]:
    found = [
        _problem(
            "signature_missing",
            f"record #{finding.run_seq}",
            f"{finding.record_kind} #{finding.run_seq}: the signature of"
            f" {finding.signature.signer} is {finding.confirmation.value}: {finding.problem}",
            f"r{finding.run_seq}",
        )
        for finding in check_run_signatures(ctx.conn, ctx.facts.run_id)
        if finding.confirmation in _BAD_SIGNATURES
    ]
    found.extend(
        _problem(
            "signature_missing",
            f"task {name!r}",
            f"task {name!r} (record #{seq}) has no verifier's signature",
            f"r{seq}",
        )
        for seq, name in ctx.facts.unverified_tasks
    )
    return found


def _disposed(ctx: _Ctx) -> list[ReleaseProblem]:
    row = read_disposition(ctx.conn, ctx.facts.run_id)
    if row is None:
        return []
    when = datetime.fromtimestamp(row.decided_wall_ns / 1e9, tz=UTC)
    return [
        _problem(
            "already_disposed",
            "disposition",
            f"{row.decision} by {row.by_name} on {when:%Y-%m-%d %H:%M} UTC",
            f"s{row.source_seq}",
        )
    ]


def _releaser(ctx: _Ctx) -> list[ReleaseProblem]:
    name = ctx.releaser
    if name is None:
        return []
    found: list[ReleaseProblem] = []
    seq = ctx.facts.performed_by.get(name)
    if seq is not None:
        found.append(
            _problem(
                "releaser_performed",
                name,
                f"{name} performed a task of this batch (record #{seq}); another QA person"
                " must release it",
                f"r{seq}",
            )
        )
    for row in read_qc_results(ctx.conn, ctx.facts.run_id):
        if row.entered_by == name:
            found.append(
                _problem(
                    "releaser_performed",
                    name,
                    f"{name} entered QC result {row.result_id}; another QA person must release",
                    row.result_id,
                )
            )
    return found


RELEASE_RULES: dict[str, Callable[[_Ctx], list[ReleaseProblem]]] = {
    "journal_not_verifying": _journal,
    "run_not_complete": _completion,
    "no_release_plan": _plan,
    "deviation_open": _deviations,
    "qc_missing": _qc,  # also qc_oos and qc_unverified
    "signature_missing": _signatures,
    "already_disposed": _disposed,
    "releaser_performed": _releaser,
}
"""Each rule and the function finding its problems, in the order they are listed."""


def release_problems(
    journal: Journal,
    conn: sqlite3.Connection,
    run_id: str,
    *,
    releaser: str | None = None,
    facts: BatchFacts | None = None,
    verified: Sequence[ReleaseProblem] | None = None,
) -> list[ReleaseProblem]:
    """Every reason the batch may not be released now (empty: it may).

    ``verified``: the ``journal_not_verifying`` problems of a verification already made
    of this very state (see :func:`dispose_batch`), instead of verifying again."""
    ctx = _Ctx(journal, conn, facts or batch_facts(journal, run_id), releaser)
    found: list[ReleaseProblem] = []
    for code, rule in RELEASE_RULES.items():
        found.extend(
            verified if code == "journal_not_verifying" and verified is not None else rule(ctx)
        )
    return found


def _heads(conn: sqlite3.Connection, run_id: str) -> tuple[object, ...]:
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
        return _Verified(_heads(conn, run_id), _journal(_Ctx(journal, conn, facts, None)))


def refusal_text(run_id: str, problems: Sequence[ReleaseProblem]) -> str:
    """``release refused for batch ... (3 reasons):`` and one line per reason."""
    lines = [f"release refused for batch {run_id} ({len(problems)} reasons):"]
    lines.extend(f"  {p.code:<22} {p.detail}" for p in problems)
    return "\n".join(lines)


def _site_head(conn: sqlite3.Connection) -> SiteRef | None:
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
                verified += _review_rows(_Ctx(journal, tx.conn, facts, None))
            problems = release_problems(
                journal,
                tx.conn,
                run_id,
                releaser=who.account.name,
                facts=facts,
                verified=verified,
            )
        else:
            problems = _disposed(_Ctx(journal, tx.conn, facts, None))
            if facts.ended is None:  # decided at its end: verify holds it to that record
                problems.append(
                    _problem(
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
