"""QC results entered by hand: the entry (QC, signed ``performed``), a second person's
check (``verified``, never by the enterer), and QA's invalidation (``approved``).

An entry is checked against its run before anything is written (:func:`judge`: the run
ended, the test is in its release plan, the unit is the test's, exactly one of value and
text and the right one, the sample's COI and DIN are the batch's, tested_on from the run's
start to today, no valid result of the test yet). An out-of-specification result opens
its deviation (``DeviationRaised(origin="qc")``, signed ``performed`` by the analyst) in
the same transaction: the result never stands without it. Every refusal is journaled as
``review_act_refused`` (with the ``signature_refused`` record when the signature was the
refused part), then raised.
"""

from __future__ import annotations

from datetime import date
from typing import NamedTuple, Protocol

from pydantic import BaseModel, ConfigDict, Field

from cellauto.records.backend import Conn
from cellauto.records.refs import Meaning, SiteRef
from cellauto.records.site_payloads_review import (
    DeviationRaised,
    QcResultBody,
    QcResultEntered,
    QcResultInvalidated,
    QcResultVerified,
    SampleIdentity,
)
from cellauto.records.site_store import SiteStore, SiteTx
from cellauto.review._acting import ReviewActing, check_actor, payload, run_review_act, sign_act
from cellauto.review.ids import next_qc_result_id, next_site_deviation_id
from cellauto.review.qc_eval import QcInputError, invalidation_problem, oos_title
from cellauto.review.qc_run import Judged, RunFacts, judge, run_facts
from cellauto.review.read import confirm_run_review, deviation_investigators, read_deviations
from cellauto.site._acts import today
from cellauto.site._chain import stored_site_record
from cellauto.site.auth import Authenticated
from cellauto.site.policy import current_policy
from cellauto.site.roles import Permission

__all__ = [
    "QcAct",
    "QcResultInput",
    "Refuses",
    "Signed",
    "add_result",
    "ended_run",
    "invalidate_result",
    "open_oos_deviation",
    "verify_result",
]


class QcResultInput(BaseModel):
    """A result as the analyst enters it. ``unit`` None: the test's unit; ``coi`` None:
    the batch's (a sample labelled with another COI is refused)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    test: str = Field(min_length=1, max_length=80)
    sample_id: str = Field(min_length=1, max_length=64)
    method: str = Field(min_length=1, max_length=200)
    analyst: str = Field(min_length=1, max_length=120)
    tested_on: date
    instrument: str = Field(min_length=1, max_length=80)
    value: float | None = None
    text: str | None = None
    unit: str | None = None
    din: str | None = None
    coi: str | None = None


class QcAct(NamedTuple):
    """A recorded entry: its record and signature, its id and verdict, and the deviation
    (with its signature) an out-of-specification result opened."""

    ref: SiteRef
    signature: SiteRef
    result_id: str
    observed: float | str
    verdict: str
    deviation_id: str | None
    deviation_signature: SiteRef | None


class Signed(NamedTuple):
    ref: SiteRef
    signature: SiteRef


class Refuses(Protocol):
    """What refuses a check: an act (:class:`ReviewActing`, journaled) or a dry run."""

    def refused(self, cause: str, message: str) -> Exception: ...


def ended_run(tx: SiteTx, acting: Refuses, run_id: str) -> RunFacts:
    """The run's facts, refused unless it exists and ended (its review rows confirmed)."""
    facts = run_facts(tx.conn, run_id)
    if facts is None:
        raise acting.refused("unknown_run", f"no run {run_id}; `cellauto runs` lists them")
    if not facts.ended:
        raise acting.refused(
            "run_not_ended", f"run {run_id} has not ended: QC results are recorded after the run"
        )
    if facts.plan is None:
        raise acting.refused(
            "no_release_plan",
            f"run {run_id} has no release plan (it started before release tests were recorded)",
        )
    confirm_run_review(tx.conn, run_id)
    return facts


def _valid_result(conn: Conn, run_id: str, test: str) -> str | None:
    row = conn.execute(
        "SELECT result_id FROM qc_results WHERE run_id = ? AND test = ? AND status = 'valid'",
        (run_id, test),
    ).fetchone()
    return None if row is None else str(row[0])


def open_oos_deviation(
    tx: SiteTx, acting: ReviewActing, run_id: str, judged: Judged, result_id: str
) -> tuple[str, SiteRef]:
    """The deviation an out-of-specification result opens, signed ``performed`` by the
    analyst recording it, in the result's transaction: (its id, its signature)."""
    deviation_id = next_site_deviation_id(tx.conn, run_id)
    body = judged.body
    shown = body.text if body.text is not None else f"{body.value:g} {body.unit}".strip()
    record = DeviationRaised(
        by=acting.who.account.name,
        terminal=acting.who.terminal,
        reason=acting.reason,
        deviation_id=deviation_id,
        run_id=run_id,
        origin="qc",
        title=oos_title(judged.test, judged.observed),
        description=(
            f"QC result {result_id} ({judged.test.name}, sample {body.sample.sample_id}) is out"
            f" of specification: {shown} (compared as {judged.observed!r}) against"
            f" {judged.test.spec.describe()}; opened with the result"
        )[:4000],
        qc_result=result_id,
    )
    ref = tx.append(record)
    signature = sign_act(
        tx,
        acting,
        ref,
        record,
        Meaning.PERFORMED,
        f"I raise {deviation_id}: {record.title}",
        permission=Permission.DEVIATION_RAISE,
    )
    return deviation_id, signature


def _body(entry: QcResultInput, facts: RunFacts, result_id: str) -> QcResultBody:
    plan = facts.plan
    test = plan.test(entry.test) if plan is not None else None
    unit = entry.unit if entry.unit is not None else (test.unit if test is not None else "")
    coi = entry.coi or (plan.coi if plan is not None and plan.coi else "")
    return QcResultBody.model_construct(  # checked by judge(), validated at the record
        result_id=result_id,
        test=entry.test,
        sample=SampleIdentity(sample_id=entry.sample_id, coi=coi or "?", din=entry.din),
        method=entry.method,
        analyst=entry.analyst,
        tested_on=entry.tested_on,
        instrument=entry.instrument,
        value=entry.value,
        text=entry.text,
        unit=unit,
        lims_row=None,
    )


def add_result(
    store: SiteStore, who: Authenticated, run_id: str, entry: QcResultInput, *, reason: str = ""
) -> QcAct:
    """Record one result entered by hand (see the module doc); refused and journaled
    when any rule fails."""
    acting = ReviewActing(who, "qc add", f"{run_id} {entry.test}"[:200], run_id, reason)

    def body(tx: SiteTx) -> QcAct:
        check_actor(tx, acting, Permission.QC_ENTER)
        facts = ended_run(tx, acting, run_id)
        result_id = next_qc_result_id(tx.conn, run_id, entry.test)
        try:
            policy, _ = current_policy(tx.conn)
            judged = judge(facts, _body(entry, facts, result_id), today(tx), policy)
        except QcInputError as exc:
            raise acting.refused(exc.cause, str(exc)) from None
        existing = _valid_result(tx.conn, run_id, entry.test)
        if existing is not None:
            raise acting.refused(
                "retest_needs_invalidation",
                f"{entry.test} already has the valid result {existing}: a retest is recorded"
                " only after QA invalidates it (`cellauto qc invalidate`)",
            )
        result = payload(lambda: QcResultBody.model_validate(judged.body.model_dump()), "qc add")
        record = payload(
            lambda: QcResultEntered(
                by=who.account.name,
                terminal=who.terminal,
                reason=reason,
                run_id=run_id,
                result=result,
                observed=judged.observed,
                verdict=judged.verdict,
            ),
            "qc add",
        )
        ref = tx.append(record)
        shown = result.text if result.text is not None else f"{result.value:g} {result.unit}"
        batch = facts.batch_din or run_id
        signature = sign_act(
            tx,
            acting,
            ref,
            record,
            Meaning.PERFORMED,
            f"I performed and entered {result.test} = {shown.strip()} for batch {batch}",
            permission=Permission.QC_ENTER,
        )
        deviation: tuple[str, SiteRef] | None = None
        if judged.verdict == "fail":
            deviation = open_oos_deviation(tx, acting, run_id, judged, result_id)
        return QcAct(
            ref,
            signature,
            result_id,
            judged.observed,
            judged.verdict,
            deviation[0] if deviation else None,
            deviation[1] if deviation else None,
        )

    return run_review_act(store, acting, body)


def _result_row(tx: SiteTx, acting: ReviewActing, result_id: str) -> tuple[str, ...]:
    row = tx.conn.execute(
        "SELECT run_id, test, source, status, entered_by, entry_seq, verified_by"
        " FROM qc_results WHERE result_id = ?",
        (result_id,),
    ).fetchone()
    if row is None:
        raise acting.refused(
            "unknown_result", f"no QC result {result_id}; `cellauto qc tests RUN_ID` lists them"
        )
    confirm_run_review(tx.conn, row[0])
    return tuple(row)


def verify_result(
    store: SiteStore, who: Authenticated, result_id: str, *, reason: str = ""
) -> Signed:
    """A second person's check of a result entered by hand (signed ``verified``)."""
    acting = ReviewActing(who, "qc verify", result_id, None, reason)

    def body(tx: SiteTx) -> Signed:
        check_actor(tx, acting, Permission.QC_VERIFY)
        run_id, test, source, status, entered_by, entry_seq, verified_by = _result_row(
            tx, acting._replace(run_id=None), result_id
        )
        here = acting._replace(run_id=run_id)
        if source != "manual":
            raise here.refused(
                "not_manual", f"{result_id} was imported from the LIMS: it needs no verification"
            )
        if status != "valid":
            raise here.refused("invalidated", f"{result_id} was invalidated: nothing to verify")
        if verified_by is not None:
            raise here.refused("already_verified", f"{result_id} was verified by {verified_by}")
        if entered_by == who.account.name:
            raise here.refused(
                "segregation",
                f"{who.account.name} entered {result_id} and may not verify it: another"
                " person must (QC or QA)",
            )
        entry = stored_site_record(tx.conn, int(entry_seq))
        if entry is None:  # confirm_run_review found its row: a missing record is tampering
            raise here.refused("unknown_result", f"the entry of {result_id} is not on the chain")
        record = QcResultVerified(
            by=who.account.name,
            terminal=who.terminal,
            reason=reason,
            run_id=str(run_id),
            result_id=result_id,
            entry=SiteRef(seq=entry.seq, hash=entry.hash),
        )
        ref = tx.append(record)
        signature = sign_act(
            tx,
            here,
            ref,
            record,
            Meaning.VERIFIED,
            f"I verified QC result {result_id} ({test}) entered by {entered_by}",
            permission=Permission.QC_VERIFY,
            performer=str(entered_by),
        )
        return Signed(ref, signature)

    return run_review_act(store, acting, body)


def _check_investigation(
    tx: SiteTx, acting: ReviewActing, result_id: str, run_id: str, deviation_id: str | None
) -> None:
    """A failing result is invalidated only on an investigation (of its run, investigated
    or closed) that its invalidator did not record; a passing one on a cause alone."""
    row = tx.conn.execute(
        "SELECT verdict FROM qc_results WHERE result_id = ?", (result_id,)
    ).fetchone()
    failing = row is not None and row[0] == "fail"
    if deviation_id is None:
        if failing:
            raise acting.refused(
                "oos_needs_investigation",
                f"{result_id} is out of specification: it is invalidated only on the OOS"
                " investigation that found the lab error; name its deviation (--deviation),"
                " investigated or closed",
            )
        return
    found = next(
        (d for d in read_deviations(tx.conn, run_id=run_id) if d.deviation_id == deviation_id),
        None,
    )
    if found is None:
        raise acting.refused("unknown_deviation", f"{deviation_id} is no deviation of run {run_id}")
    if not failing:
        return
    problem = invalidation_problem(
        found.status, deviation_investigators(tx.conn, deviation_id), acting.who.account.name
    )
    if problem is not None:
        raise acting.refused(
            problem[0], f"{result_id} cannot be invalidated on {deviation_id}: {problem[1]}"
        )


def invalidate_result(
    store: SiteStore,
    who: Authenticated,
    result_id: str,
    *,
    cause: str,
    deviation_id: str | None = None,
    reason: str = "",
) -> Signed:
    """QA takes a result out of consideration (signed ``approved``): a lab error
    confirmed, typically by the OOS investigation ``deviation_id`` (of the same run)."""
    acting = ReviewActing(who, "qc invalidate", result_id, None, reason)

    def body(tx: SiteTx) -> Signed:
        check_actor(tx, acting, Permission.QC_INVALIDATE)
        run_id, test, _source, status, _by, _seq, _verified = _result_row(tx, acting, result_id)
        here = acting._replace(run_id=run_id)
        if status != "valid":
            raise here.refused("invalidated", f"{result_id} is already invalidated")
        _check_investigation(tx, here, result_id, str(run_id), deviation_id)
        record = payload(
            lambda: QcResultInvalidated(
                by=who.account.name,
                terminal=who.terminal,
                reason=reason,
                run_id=str(run_id),
                result_id=result_id,
                cause=cause,
                deviation_id=deviation_id,
            ),
            "qc invalidate",
        )
        ref = tx.append(record)
        signature = sign_act(
            tx,
            here,
            ref,
            record,
            Meaning.APPROVED,
            f"I invalidate QC result {result_id} ({test}): {cause}"[:500],
            permission=Permission.QC_INVALIDATE,
        )
        return Signed(ref, signature)

    return run_review_act(store, acting, body)
