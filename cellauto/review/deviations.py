"""Deviations as a workflow: raise, classify (and reclassify), investigate, close,
withdraw; each one site transaction with its signature.

Who signs what (:mod:`cellauto.site.roles`): raising is ``performed`` (``deviation.raise``:
operators, supervisors, QC, QA); classifying is ``reviewed`` (``deviation.classify``: QA);
investigating is ``performed`` (``deviation.investigate``: supervisors, QA); closing and
withdrawing are ``approved`` (``deviation.close``: QA), never by a person who
investigated the deviation, first or in an amendment (segregation of duties, EU GMP
Annex 11 §12). The lifecycle and the CAPA rule are data (:data:`TRANSITIONS`, :data:`CAPA_RULE`, in
:mod:`cellauto.review.deviation_rules`), tested pair by pair and replayed by ``verify``.

A deviation the runner recorded (``DEV-<run12>-<nn>``) is ``open`` from its run record
until QA classifies it: that first classification names the run record (``run_record``)
and creates the deviation's row. A deviation raised by a person (``DEV-<run12>-S<nn>``)
is raised on an ended or active run; ``hold=True`` on an active run also requests a
Hold of it in the same transaction, as ``cellauto hold`` does
(:func:`cellauto.site.run_requests.append_request`).

A refusal is journaled as ``review_act_refused`` (and ``signature_refused`` when the
signature was the refused part) in a transaction of its own, then raised as
:class:`~cellauto.errors.ReviewRefusedError` or :class:`~cellauto.errors.PermissionRefusedError`;
input that cannot form a record (a title too short) is :class:`~cellauto.errors.BadInputError`
before anything is written.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import cast

from cellauto.errors import BadInputError
from cellauto.records.refs import Meaning, RecordRef
from cellauto.records.site_payloads_review import (
    Classification,
    DeviationClassified,
    DeviationClosed,
    DeviationInvestigated,
    DeviationWithdrawn,
    Evidence,
    ProductImpact,
    RootCauseCategory,
)
from cellauto.records.site_store import SiteStore, SiteTx
from cellauto.review._acting import (
    ReviewActing,
    check_actor,
    payload,
    run_review_act,
    sign_act,
)
from cellauto.review.deviation_raise import DeviationAct, raise_deviation
from cellauto.review.deviation_rules import (
    CAPA_RULE,
    TRANSITIONS,
    Act,
    Status,
    capa_problem,
    transition_problem,
)
from cellauto.review.ids import parse_deviation_id, run_for_key
from cellauto.review.read import (
    DeviationRow,
    deviation_investigators,
    read_deviation,
    runner_deviations,
)
from cellauto.site.auth import Authenticated
from cellauto.site.roles import Permission
from cellauto.site.run_facts import run_facts

__all__ = [
    "CAPA_RULE",
    "TRANSITIONS",
    "DeviationAct",
    "classify_deviation",
    "close_deviation",
    "hash_evidence",
    "investigate_deviation",
    "raise_deviation",
    "withdraw_deviation",
]

log = logging.getLogger(__name__)

_LIST_HINT = "`cellauto deviations` lists them"


def _resolve(store: SiteStore, deviation_id: str) -> str | None:
    """The run of a deviation id (BadInputError if it is no deviation id; None if no run
    has that key). A run id never changes, so it is read before the write lock."""
    key = parse_deviation_id(deviation_id).run_key
    with store.reading() as conn:
        return run_for_key(conn, key)


def _current(tx: SiteTx, acting: ReviewActing) -> DeviationRow:
    """The deviation acted on, its run's review rows confirmed against their records."""
    row = None if acting.run_id is None else read_deviation(tx.conn, acting.subject)
    if row is None:
        raise acting.refused("unknown_deviation", f"no deviation {acting.subject}; {_LIST_HINT}")
    return row


def _classification(row: DeviationRow) -> Classification | None:
    return None if row.classification is None else Classification(row.classification)


def _transition(acting: ReviewActing, row: DeviationRow, act: Act) -> Status:
    cause, why, to = transition_problem(
        cast(Status, row.status),
        act,
        origin=row.origin,
        classification=_classification(row),
        reason=acting.reason,
    )
    if to is None:
        raise acting.refused(cause, f"{acting.act} refused: {row.deviation_id} {why}")
    return to


# -- classify -----------------------------------------------------------------------------
def _run_record(tx: SiteTx, row: DeviationRow) -> RecordRef | None:
    """The run's ``deviation`` record, for the first act on a deviation the runner
    recorded (None once its row exists, or for one raised on the site)."""
    if row.origin != "runner" or row.source_seq is not None:
        return None
    recorded = next(
        r for r in runner_deviations(tx.conn, row.run_id) if r.deviation_id == row.deviation_id
    )
    return RecordRef(
        chain="run", run_id=row.run_id, seq=recorded.seq, hash=recorded.hash, kind="deviation"
    )


def _other_batches(tx: SiteTx, acting: ReviewActing, runs: Sequence[str]) -> None:
    for other in runs:
        if run_facts(tx.conn, other) is None:
            raise acting.refused(
                "unknown_run", f"other batch {other}: no such run; `cellauto runs` lists them"
            )


def classify_deviation(
    store: SiteStore,
    who: Authenticated,
    deviation_id: str,
    *,
    classification: Classification | str,
    impact_assessment: str,
    other_batches: Sequence[str] = (),
    reason: str = "",
) -> DeviationAct:
    """QA classifies a deviation (signed ``reviewed``); a deviation classified (or
    investigated) already is reclassified, which needs ``reason`` (the record names the
    ``previous`` class; an investigation stands)."""
    run_id = _resolve(store, deviation_id)
    template = payload(
        lambda: DeviationClassified(
            by=who.account.name,
            reason=reason,
            terminal=who.terminal,
            deviation_id=deviation_id,
            run_id=run_id or parse_deviation_id(deviation_id).run_key,
            classification=classification,
            impact_assessment=impact_assessment,
            other_batches=list(other_batches),
        ),
        f"classification of {deviation_id}",
    )
    acting = ReviewActing(who, "classify", deviation_id, run_id, reason)

    def body(tx: SiteTx) -> DeviationAct:
        check_actor(tx, acting, Permission.DEVIATION_CLASSIFY)
        row = _current(tx, acting)
        previous = _classification(row)
        again = previous is not None and bool(reason.strip())  # else: already classified
        _transition(acting, row, "reclassify" if again else "classify")
        _other_batches(tx, acting, template.other_batches)
        record = template.model_copy(
            update={"previous": previous, "run_record": _run_record(tx, row)}
        )
        ref = tx.append(record)
        was = "" if previous is None else f" (was {previous.value})"
        signature = sign_act(
            tx,
            acting,
            ref,
            record,
            Meaning.REVIEWED,
            f"I classify deviation {deviation_id} as {record.classification.value}{was}:"
            f" {impact_assessment[:80]}",
            permission=Permission.DEVIATION_CLASSIFY,
        )
        return DeviationAct(deviation_id, ref, signature)

    return run_review_act(store, acting, body)


# -- investigate --------------------------------------------------------------------------
def hash_evidence(paths: Sequence[Path]) -> tuple[list[Evidence], list[str]]:
    """Each file's name, SHA-256 and size (the bytes stay where they are), and the
    files that could not be read ("path: why")."""
    found: list[Evidence] = []
    missing: list[str] = []
    for path in paths:
        try:
            with Path(path).open("rb") as handle:
                digest = hashlib.file_digest(handle, "sha256")
                size = handle.tell()
        except OSError as exc:
            missing.append(f"{path}: {exc.strerror or exc}")
            continue
        name, sha256 = Path(path).name, digest.hexdigest()
        found.append(
            payload(
                partial(Evidence, name=name, sha256=sha256, size_bytes=size),
                f"evidence {path}",
            )
        )
    return found, missing


def investigate_deviation(
    store: SiteStore,
    who: Authenticated,
    deviation_id: str,
    *,
    root_cause: str,
    category: RootCauseCategory | str,
    product_impact: ProductImpact | str,
    impact_detail: str,
    evidence: Sequence[Path | Evidence] = (),
    reason: str = "",
) -> DeviationAct:
    """The investigation of a classified deviation (signed ``performed``); amending an
    investigated one needs ``reason``. Evidence files are kept by name, hash and size
    (an :class:`Evidence` given as such, typed in the web app, is kept as given)."""
    run_id = _resolve(store, deviation_id)
    files, missing = hash_evidence([e for e in evidence if not isinstance(e, Evidence)])
    files = [*(e for e in evidence if isinstance(e, Evidence)), *files]
    record = payload(
        lambda: DeviationInvestigated(
            by=who.account.name,
            reason=reason,
            terminal=who.terminal,
            deviation_id=deviation_id,
            run_id=run_id or parse_deviation_id(deviation_id).run_key,
            root_cause=root_cause,
            category=category,
            product_impact=product_impact,
            impact_detail=impact_detail,
            evidence=files,
        ),
        f"investigation of {deviation_id}",
    )
    acting = ReviewActing(who, "investigate", deviation_id, run_id, reason)

    def body(tx: SiteTx) -> DeviationAct:
        check_actor(tx, acting, Permission.DEVIATION_INVESTIGATE)
        if missing:
            raise acting.refused(
                "evidence_missing", f"evidence cannot be read: {'; '.join(missing)}"
            )
        row = _current(tx, acting)
        _transition(acting, row, "investigate")
        ref = tx.append(record)
        signature = sign_act(
            tx,
            acting,
            ref,
            record,
            Meaning.PERFORMED,
            f"I performed the investigation of {deviation_id}: root cause"
            f" {record.category.value}, product impact {record.product_impact.value}",
            permission=Permission.DEVIATION_INVESTIGATE,
        )
        return DeviationAct(deviation_id, ref, signature)

    return run_review_act(store, acting, body)


# -- close and withdraw -------------------------------------------------------------------
def close_deviation(
    store: SiteStore,
    who: Authenticated,
    deviation_id: str,
    *,
    conclusion: str,
    capa: str | None = None,
    no_capa_reason: str | None = None,
    reason: str = "",
) -> DeviationAct:
    """QA closes a deviation (signed ``approved``): an investigated one, or a minor one
    from classified with ``reason`` (the justification for no investigation); with a
    CAPA reference where :data:`CAPA_RULE` needs one; never by its investigator."""
    if capa is not None and no_capa_reason is not None:
        raise BadInputError(
            f"closing {deviation_id}: give a CAPA reference or a reason for no CAPA, not both"
        )
    run_id = _resolve(store, deviation_id)
    record = payload(
        lambda: DeviationClosed(
            by=who.account.name,
            reason=reason,
            terminal=who.terminal,
            deviation_id=deviation_id,
            run_id=run_id or parse_deviation_id(deviation_id).run_key,
            conclusion=conclusion,
            capa=capa,
            no_capa_reason=no_capa_reason,
        ),
        f"closure of {deviation_id}",
    )
    acting = ReviewActing(who, "close", deviation_id, run_id, reason)

    def body(tx: SiteTx) -> DeviationAct:
        check_actor(tx, acting, Permission.DEVIATION_CLOSE)
        row = _current(tx, acting)
        _transition(acting, row, "close")
        problem = capa_problem(_classification(row), capa, no_capa_reason)
        if problem is not None:
            raise acting.refused("capa_rule", f"close refused: {deviation_id}: {problem}")
        if who.account.name in deviation_investigators(tx.conn, deviation_id):
            raise acting.refused(
                "segregation",
                f"close refused: {who.account.name} investigated {deviation_id}; another"
                " person of QA must close it",
            )
        ref = tx.append(record)
        with_capa = (
            f"with CAPA {capa}"
            if capa is not None
            else f"without CAPA: {no_capa_reason}"
            if no_capa_reason is not None
            else "without CAPA"
        )
        signature = sign_act(
            tx,
            acting,
            ref,
            record,
            Meaning.APPROVED,
            f"I approve the closure of {deviation_id} ({row.classification}) {with_capa}",
            permission=Permission.DEVIATION_CLOSE,
        )
        return DeviationAct(deviation_id, ref, signature)

    return run_review_act(store, acting, body)


def withdraw_deviation(
    store: SiteStore, who: Authenticated, deviation_id: str, *, cause: str
) -> DeviationAct:
    """QA withdraws a deviation raised on the site in error (signed ``approved``); one the
    runner recorded is never withdrawn, nor one investigated."""
    run_id = _resolve(store, deviation_id)
    record = payload(
        lambda: DeviationWithdrawn(
            by=who.account.name,
            terminal=who.terminal,
            deviation_id=deviation_id,
            run_id=run_id or parse_deviation_id(deviation_id).run_key,
            cause=cause,
        ),
        f"withdrawal of {deviation_id}",
    )
    acting = ReviewActing(who, "withdraw", deviation_id, run_id, cause)

    def body(tx: SiteTx) -> DeviationAct:
        check_actor(tx, acting, Permission.DEVIATION_CLOSE)
        row = _current(tx, acting)
        _transition(acting, row, "withdraw")
        ref = tx.append(record)
        signature = sign_act(
            tx,
            acting,
            ref,
            record,
            Meaning.APPROVED,
            f"I approve the withdrawal of {deviation_id}, raised in error: {cause}",
            permission=Permission.DEVIATION_CLOSE,
        )
        return DeviationAct(deviation_id, ref, signature)

    return run_review_act(store, acting, body)
