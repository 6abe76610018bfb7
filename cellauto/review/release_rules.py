"""The release rules: every reason a batch may not be released now.

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
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import NamedTuple

from cellauto.errors import JournalError
from cellauto.records import Journal, verify_run
from cellauto.records.backend import Conn
from cellauto.records.ledger_check import check_ledger
from cellauto.records.signature_check import Confirmation, check_run_signatures
from cellauto.records.site_payloads_review import ReleaseProblem
from cellauto.records.site_verify import verify_site
from cellauto.review.batch_facts import BatchFacts, batch_facts
from cellauto.review.coa import shown_result
from cellauto.review.read import (
    confirm_run_review,
    read_deviations,
    read_disposition,
    read_qc_results,
)
from cellauto.site.replay import replay_problem

__all__ = [
    "RELEASE_RULES",
    "RuleContext",
    "disposed_problems",
    "journal_problems",
    "problem",
    "release_problems",
    "review_row_problems",
]

_BAD_SIGNATURES = frozenset(
    {Confirmation.MISSING, Confirmation.ALTERED, Confirmation.SIMULATED_IN_REAL_RUN}
)


class RuleContext(NamedTuple):
    """What the rules read: the journal, a connection in one state, the run's facts and
    the person who would release (None: anyone)."""

    journal: Journal
    conn: Conn
    facts: BatchFacts
    releaser: str | None


def problem(code: str, subject: str, detail: str, where: str | None = None) -> ReleaseProblem:
    return ReleaseProblem(code=code, subject=subject, detail=detail, where=where)


def journal_problems(ctx: RuleContext) -> list[ReleaseProblem]:
    found: list[ReleaseProblem] = []
    ledger = check_ledger(ctx.conn, None)
    run = verify_run(ctx.journal, ctx.facts.run_id, ledger=ledger)
    if not run.intact:
        where = None if run.first_broken_seq is None else f"r{run.first_broken_seq}"
        found.append(problem("journal_not_verifying", "run chain", str(run.reason), where))
    site = verify_site(ctx.conn, ledger, site_replay=replay_problem)
    if not site.intact:
        found.append(problem("journal_not_verifying", "site chain", str(site.reason)))
    return found + review_row_problems(ctx)


def review_row_problems(ctx: RuleContext) -> list[ReleaseProblem]:
    """The run's review rows against the site records that set them."""
    try:
        confirm_run_review(ctx.conn, ctx.facts.run_id)
    except JournalError as exc:
        return [problem("journal_not_verifying", "review records", str(exc))]
    return []


def _completion(ctx: RuleContext) -> list[ReleaseProblem]:
    facts = ctx.facts
    if facts.ended is None:
        return [
            problem(
                "run_not_complete",
                "run",
                f"the run has not ended (its last record is #{facts.head_seq})",
                f"r{facts.head_seq}",
            )
        ]
    if facts.ended.final_state != "Complete":
        return [
            problem(
                "run_not_complete",
                "run",
                f"the run ended {facts.ended.final_state}: {facts.ended.reason}",
                f"r{facts.head_seq}",
            )
        ]
    return []


def _plan(ctx: RuleContext) -> list[ReleaseProblem]:
    facts = ctx.facts
    started = f"{facts.started.protocol_name} {facts.started.protocol_version}"
    if facts.plan is None:
        return [problem("no_release_plan", "release tests", f"{started} recorded no release plan")]
    if not facts.plan.tests:
        return [
            problem(
                "no_release_plan",
                "release tests",
                f"{started} declares no release tests",
                f"r{facts.plan_seq}",
            )
        ]
    return []


def _deviations(ctx: RuleContext) -> list[ReleaseProblem]:
    return [
        problem(
            "deviation_open",
            row.deviation_id,
            f"{row.deviation_id} ({row.classification or 'not classified'}) is {row.status},"
            f" not closed: {row.title}",
            row.deviation_id,
        )
        for row in read_deviations(ctx.conn, run_id=ctx.facts.run_id)
        if not row.terminal
    ]


def _qc(ctx: RuleContext) -> list[ReleaseProblem]:
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
            found.append(problem("qc_missing", test.name, f"{test.name}: no valid result"))
            continue
        if row.verdict != "pass":
            found.append(
                problem(
                    "qc_oos",
                    test.name,
                    f"{test.name} {shown_result(row)} {test.spec_unit} is out of specification"
                    f" ({row.result_id})",
                    row.result_id,
                )
            )
        if row.source == "manual" and row.verified_by is None:
            found.append(
                problem(
                    "qc_unverified",
                    test.name,
                    f"{test.name} entered by {row.entered_by}, not verified by a second person"
                    f" ({row.result_id}: `cellauto qc verify`)",
                    row.result_id,
                )
            )
    return found


def _signatures(ctx: RuleContext) -> list[ReleaseProblem]:
    found = [
        problem(
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
        problem(
            "signature_missing",
            f"task {name!r}",
            f"task {name!r} (record #{seq}) has no verifier's signature",
            f"r{seq}",
        )
        for seq, name in ctx.facts.unverified_tasks
    )
    return found


def disposed_problems(ctx: RuleContext) -> list[ReleaseProblem]:
    row = read_disposition(ctx.conn, ctx.facts.run_id)
    if row is None:
        return []
    when = datetime.fromtimestamp(row.decided_wall_ns / 1e9, tz=UTC)
    return [
        problem(
            "already_disposed",
            "disposition",
            f"{row.decision} by {row.by_name} on {when:%Y-%m-%d %H:%M} UTC",
            f"s{row.source_seq}",
        )
    ]


def _releaser(ctx: RuleContext) -> list[ReleaseProblem]:
    name = ctx.releaser
    if name is None:
        return []
    found: list[ReleaseProblem] = []
    seq = ctx.facts.performed_by.get(name)
    if seq is not None:
        found.append(
            problem(
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
                problem(
                    "releaser_performed",
                    name,
                    f"{name} entered QC result {row.result_id}; another QA person must release",
                    row.result_id,
                )
            )
    return found


RELEASE_RULES: dict[str, Callable[[RuleContext], list[ReleaseProblem]]] = {
    "journal_not_verifying": journal_problems,
    "run_not_complete": _completion,
    "no_release_plan": _plan,
    "deviation_open": _deviations,
    "qc_missing": _qc,  # also qc_oos and qc_unverified
    "signature_missing": _signatures,
    "already_disposed": disposed_problems,
    "releaser_performed": _releaser,
}
"""Each rule and the function finding its problems, in the order they are listed."""


def release_problems(
    journal: Journal,
    conn: Conn,
    run_id: str,
    *,
    releaser: str | None = None,
    facts: BatchFacts | None = None,
    verified: Sequence[ReleaseProblem] | None = None,
) -> list[ReleaseProblem]:
    """Every reason the batch may not be released now (empty: it may).

    ``verified``: the ``journal_not_verifying`` problems of a verification already made
    of this very state (see :func:`dispose_batch`), instead of verifying again."""
    ctx = RuleContext(journal, conn, facts or batch_facts(journal, run_id), releaser)
    found: list[ReleaseProblem] = []
    for code, rule in RELEASE_RULES.items():
        found.extend(
            verified if code == "journal_not_verifying" and verified is not None else rule(ctx)
        )
    return found
