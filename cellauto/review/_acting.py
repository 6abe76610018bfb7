"""What the acts of review share: the acting person confirmed under the write lock with
the act's permission, the act's record and signature, and refusals journaled as
``review_act_refused`` in a transaction of their own (:func:`run_review_act`).

Every act (deviation transitions, QC entry, import, verification, invalidation, LIMS
schema, disposition) is::

    acting = ReviewActing(who, "classify", deviation_id, run_id, reason)

    def body(tx: SiteTx) -> ...:
        check_actor(tx, acting, Permission.DEVIATION_CLASSIFY)
        ...                                   # raise acting.refused(...) on any rule
        ref = tx.append(record)
        signature = sign_act(tx, acting, ref, record, Meaning.REVIEWED, statement)
        return ...

    return run_review_act(store, acting, body)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple, TypeVar

from pydantic import ValidationError

from cellauto.errors import (
    BadInputError,
    JournalError,
    PermissionRefusedError,
    ReviewRefusedError,
)
from cellauto.records.refs import SITE_CHAIN, Meaning, RecordRef, SiteRef
from cellauto.records.site_payload_base import SitePayload
from cellauto.records.site_payloads_review import ReleaseProblem, ReviewActRefused
from cellauto.records.site_store import SiteStore, SiteTx
from cellauto.site._acts import Refused, actor_problem, run_act
from cellauto.site.auth import Authenticated
from cellauto.site.roles import Permission
from cellauto.site.signatures import SignatureRefusal, sign

__all__ = ["ReviewActing", "check_actor", "payload", "run_review_act", "sign_act"]

T = TypeVar("T")


def payload(make: Callable[[], T], what: str) -> T:
    """A record model built from the act's input, or the bad input named (nothing written)."""
    try:
        return make()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors()
        )
        raise BadInputError(f"{what} refused, nothing written: {problems}") from None


class ReviewActing(NamedTuple):
    """One act of review: who, which act, on what (``subject``: a deviation id, result
    id, schema name or run id), of which run, and why."""

    who: Authenticated
    act: str
    subject: str
    run_id: str | None
    reason: str

    def refused(
        self,
        cause: str,
        message: str,
        detail: str = "",
        *,
        error: type[BadInputError] = ReviewRefusedError,
        extra: Sequence[SitePayload] = (),
        reasons: Sequence[ReleaseProblem] = (),
        exc: BadInputError | None = None,
    ) -> Refused:
        """The refusal to raise inside the act's transaction: ``review_act_refused`` (and
        ``extra`` records) journaled once the act's writes rolled back, then the error
        (``exc`` as given, else ``error(message)``)."""
        record = ReviewActRefused(
            by=self.who.account.name,
            reason=self.reason,
            terminal=self.who.terminal,
            run_id=self.run_id,
            subject=self.subject,
            act=self.act,
            cause=cause,
            detail=detail or message,
            reasons=list(reasons),
        )
        return Refused([record, *extra], exc if exc is not None else error(message))


def check_actor(tx: SiteTx, acting: ReviewActing, permission: Permission) -> None:
    """The acting person, re-confirmed under the write lock, is active and holds
    ``permission`` (an administrator never acts on a batch)."""
    problem = actor_problem(tx, acting.who, permission, f"{acting.act} {acting.subject}")
    if problem is not None:
        raise acting.refused(*problem, error=PermissionRefusedError)


def sign_act(
    tx: SiteTx,
    acting: ReviewActing,
    ref: SiteRef,
    record: SitePayload,
    meaning: Meaning,
    statement: str,
    *,
    permission: Permission,
    performer: str | None = None,
) -> SiteRef:
    """Sign the act's record ``ref`` in the act's transaction; a refused signature
    refuses the act (both refusals journaled)."""
    target = RecordRef(chain=SITE_CHAIN, seq=ref.seq, hash=ref.hash, kind=record.kind.value)
    try:
        return sign(
            tx,
            acting.who,
            target,
            meaning,
            statement,
            permission=permission,
            performer=performer,
        )
    except SignatureRefusal as refusal:
        raise acting.refused(
            "signature",
            str(refusal.error),
            extra=[refusal.record],
            exc=refusal.error,
        ) from None


def run_review_act(store: SiteStore, acting: ReviewActing, body: Callable[[SiteTx], T]) -> T:
    """:func:`~cellauto.site._acts.run_act` for an act of review: a journal found edited
    while the act read it (a review row that is not what its records say, a record that
    does not match its hash) refuses the act, and the refusal is journaled
    (``journal_not_verifying``), like any other."""

    def guarded(tx: SiteTx) -> T:
        try:
            return body(tx)
        except JournalError as exc:
            raise acting.refused(
                "journal_not_verifying",
                f"{acting.act} {acting.subject} refused: {exc}",
            ) from None

    return run_act(store, guarded)
