"""Helpers for the deviation tests: the acts by the batch's people, and what they wrote."""

from __future__ import annotations

from cellauto.records.site_payloads import SignatureRefused
from cellauto.records.site_payloads_review import ReviewActRefused
from cellauto.review.deviations import (
    DeviationAct,
    classify_deviation,
    close_deviation,
    investigate_deviation,
    raise_deviation,
    withdraw_deviation,
)
from cellauto.review.read import DeviationRow, read_deviation
from tests.raw_sql import raw_connect

from .conftest import Batch

IMPACT = "culture above 38 °C for 3 h; potency may be reduced"
ROOT_CAUSE = "the heater controller overshot after a setpoint change"
DETAIL = "viability and potency at release are within specification"
CONCLUSION = "root cause found and corrected; batch quality not affected"
TITLE = "bag label smudged"
DESCRIPTION = "the label of the final bag was smudged at the fill step"


def runner_id(batch: Batch) -> str:
    return f"DEV-{batch.run_id[:12]}-01"


def raise_one(batch: Batch, by: str = "op.ann", **kwargs: object) -> DeviationAct:
    return raise_deviation(
        batch.store,
        batch.site.sign_in(by),
        batch.run_id,
        title=str(kwargs.pop("title", TITLE)),
        description=str(kwargs.pop("description", DESCRIPTION)),
        **kwargs,  # type: ignore[arg-type]
    )


def classify(
    batch: Batch, deviation_id: str, cls: str = "major", by: str = "qa.smith", reason: str = ""
) -> DeviationAct:
    return classify_deviation(
        batch.store,
        batch.site.sign_in(by),
        deviation_id,
        classification=cls,
        impact_assessment=IMPACT,
        reason=reason,
    )


def investigate(
    batch: Batch, deviation_id: str, by: str = "sup.jones", reason: str = "", **kwargs: object
) -> DeviationAct:
    return investigate_deviation(
        batch.store,
        batch.site.sign_in(by),
        deviation_id,
        root_cause=ROOT_CAUSE,
        category="equipment",
        product_impact="none",
        impact_detail=DETAIL,
        reason=reason,
        **kwargs,  # type: ignore[arg-type]
    )


def close(
    batch: Batch,
    deviation_id: str,
    by: str = "qa.smith",
    capa: str | None = "CAPA-2026-0012",
    no_capa_reason: str | None = None,
    reason: str = "",
) -> DeviationAct:
    return close_deviation(
        batch.store,
        batch.site.sign_in(by),
        deviation_id,
        conclusion=CONCLUSION,
        capa=capa,
        no_capa_reason=no_capa_reason,
        reason=reason,
    )


def withdraw(batch: Batch, deviation_id: str, by: str = "qa.smith") -> DeviationAct:
    return withdraw_deviation(
        batch.store, batch.site.sign_in(by), deviation_id, cause="raised on the wrong batch"
    )


def row(batch: Batch, deviation_id: str) -> DeviationRow:
    with batch.store.reading() as conn:
        found = read_deviation(conn, deviation_id)
    assert found is not None
    return found


def refusals(batch: Batch, since: int) -> list[ReviewActRefused | SignatureRefused]:
    return [
        r
        for r in batch.site.new_records(since)
        if isinstance(r, ReviewActRefused | SignatureRefused)
    ]


def causes(batch: Batch, since: int) -> list[str]:
    return [r.cause for r in refusals(batch, since)]


def make_active(batch: Batch) -> None:
    """The batch as if still running: its ``run_ended`` record taken out behind the
    chain's back (the acts read only whether a run ended)."""
    conn = raw_connect(batch.path)
    try:
        conn.execute("DELETE FROM records WHERE run_id = ? AND kind = 'run_ended'", (batch.run_id,))
    finally:
        conn.close()
