"""Raising a deviation: a person's (or, through QC, a result's) report that something
departed from the procedure or a specification, on an ended or active run, signed
``performed``; with ``hold=True`` on an active run, a Hold of it requested in the same
transaction (:func:`cellauto.site.run_requests.append_request`, as ``cellauto hold``).

The id is ``DEV-<run12>-S<nn>``, derived under the write lock
(:func:`cellauto.review.ids.next_site_deviation_id`). The other transitions are in
:mod:`cellauto.review.deviations`.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import NamedTuple

from cellauto.errors import BadInputError
from cellauto.records.refs import Meaning, SiteRef
from cellauto.records.site_payloads_review import DeviationRaised
from cellauto.records.site_store import SiteStore, SiteTx
from cellauto.review._acting import (
    ReviewActing,
    check_actor,
    payload,
    run_review_act,
    sign_act,
)
from cellauto.review.ids import next_site_deviation_id
from cellauto.site.auth import Authenticated
from cellauto.site.policy import utc_datetime
from cellauto.site.roles import Permission
from cellauto.site.run_facts import run_facts, stored_run_record
from cellauto.site.run_requests import RequestGiven, append_request
from cellauto.site.signatures import SignatureRefusal

__all__ = ["DeviationAct", "raise_deviation"]

log = logging.getLogger(__name__)


class DeviationAct(NamedTuple):
    """A transition recorded: the deviation, its record and signature, and (raise with
    ``hold``) the Hold requested of the run."""

    deviation_id: str
    record: SiteRef
    signature: SiteRef
    hold: RequestGiven | None = None


def _plan_steps(tx: SiteTx, run_id: str) -> list[str]:
    first = stored_run_record(tx.conn, run_id, 0)
    steps = [] if first is None else first[1].get("steps") or []
    return [str(step["name"]) for step in steps]


def raise_deviation(
    store: SiteStore,
    who: Authenticated,
    run_id: str,
    *,
    title: str,
    description: str,
    step: str | None = None,
    observed_at: datetime | None = None,
    hold: bool = False,
    hold_expires_s: float = 30.0,
    reason: str = "",
) -> DeviationAct:
    """Raise a deviation on a run (ended or active), signed ``performed``; ``step`` a step
    of the run's plan or None (the whole batch); ``hold``: also request a Hold of the
    active run (it must not have ended), valid ``hold_expires_s``."""
    if hold_expires_s <= 0:
        raise BadInputError("the Hold request must stay valid for some time (> 0 s)")
    template = payload(
        lambda: DeviationRaised(
            by=who.account.name,
            reason=reason,
            terminal=who.terminal,
            deviation_id="DEV-000000000000-S01",  # the real id is derived under the lock
            run_id=run_id,
            origin="person",
            step=step,
            title=title,
            description=description,
            observed_at=observed_at,
            hold_requested=hold,
        ),
        f"deviation on run {run_id}",
    )
    acting = ReviewActing(who, "raise", run_id, run_id, reason)

    def body(tx: SiteTx) -> DeviationAct:
        check_actor(tx, acting, Permission.DEVIATION_RAISE)
        run = run_facts(tx.conn, run_id)
        if run is None:
            raise acting.refused(
                "unknown_run", f"no run {run_id} in this journal; `cellauto runs` lists them"
            )
        if step is not None and step not in (steps := _plan_steps(tx, run_id)):
            raise acting.refused(
                "unknown_step",
                f"run {run_id} has no step {step!r}; its plan: {', '.join(steps)}",
            )
        if observed_at is not None and observed_at > utc_datetime(tx.wall_time_ns):
            raise acting.refused(
                "observed_in_future", f"observed at {observed_at.isoformat()}: in the future"
            )
        if hold and run.ended:
            raise acting.refused(
                "run_ended",
                f"run {run_id} has ended: there is nothing to hold (raise it without --hold)",
            )
        deviation_id = next_site_deviation_id(tx.conn, run_id)
        record = template.model_copy(update={"deviation_id": deviation_id})
        ref = tx.append(record)
        signature = sign_act(
            tx,
            acting,
            ref,
            record,
            Meaning.PERFORMED,
            f"I raise deviation {deviation_id} on run {run_id} ({run.protocol}"
            f" {run.version}): {title}",
            permission=Permission.DEVIATION_RAISE,
        )
        given = None
        if hold:
            try:
                given = append_request(
                    tx,
                    who,
                    run,
                    "hold",
                    reason=f"deviation {deviation_id}: {title}",
                    expires_s=hold_expires_s,
                )
            except SignatureRefusal as refusal:
                raise acting.refused(
                    "signature", str(refusal.error), extra=[refusal.record], exc=refusal.error
                ) from None
        return DeviationAct(deviation_id, ref, signature, given)

    done = run_review_act(store, acting, body)
    log.info("deviation %s raised on run %s by %s", done.deviation_id, run_id, who.account.name)
    return done
