"""QC results entered by hand: checked against the run, signed, verified by another
person, invalidated by QA; an OOS result opens its deviation in the same commit."""

from __future__ import annotations

import math
from datetime import date
from typing import Any

import pytest

from cellauto.errors import BadInputError, PermissionRefusedError, ReviewRefusedError
from cellauto.records import Journal
from cellauto.records.release_plan import ReleasePlan
from cellauto.records.site_payloads import Signature
from cellauto.records.site_payloads_review import (
    DeviationRaised,
    QcResultBody,
    QcResultEntered,
    QcResultInvalidated,
    QcResultVerified,
    ReviewActRefused,
    SampleIdentity,
)
from cellauto.records.verify import verify_journal
from cellauto.review import qc as qc_module
from cellauto.review.qc import QcResultInput, add_result, invalidate_result, verify_result
from cellauto.review.read import read_deviations, read_qc_results
from cellauto.site.replay import replay_problem
from tests.site.chain import TERMINAL

from .conftest import Batch

TESTED_ON = date(2026, 1, 20)


def entry(**change: Any) -> QcResultInput:
    fields: dict[str, Any] = {
        "test": "viability",
        "sample_id": "S-0001",
        "method": "7-AAD flow cytometry",
        "analyst": "L. Chen",
        "tested_on": TESTED_ON,
        "instrument": "FLOW-02",
        "value": 91.5,
        "unit": "%",
    }
    fields.update(change)
    return QcResultInput(**fields)


def refusals(batch: Batch, since: int) -> list[ReviewActRefused]:
    return [r for r in batch.site.new_records(since) if isinstance(r, ReviewActRefused)]


def test_hand_entry_is_signed_and_needs_verification(batch: Batch) -> None:
    chen = batch.site.sign_in("lab.chen")
    act = add_result(batch.store, chen, batch.run_id, entry())
    assert act.verdict == "pass" and act.deviation_id is None
    assert act.result_id == f"QC-{batch.run_id[:12]}-viability-01"
    records = batch.site.new_records(act.ref.seq - 1)
    assert isinstance(records[0], QcResultEntered) and records[0].observed == 91.5
    assert isinstance(records[1], Signature) and records[1].meaning == "performed"
    with batch.store.reading() as conn:
        (row,) = read_qc_results(conn, batch.run_id)
    assert (row.source, row.status, row.verified_by) == ("manual", "valid", None)

    head = batch.site.head()
    with pytest.raises(ReviewRefusedError, match="may not verify it"):
        verify_result(batch.store, chen, act.result_id)
    assert [r.cause for r in refusals(batch, head)] == ["segregation"]

    verified = verify_result(batch.store, batch.site.sign_in("lab.ito"), act.result_id)
    verifying = batch.site.new_records(verified.ref.seq - 1)
    assert isinstance(verifying[0], QcResultVerified)
    assert isinstance(verifying[1], Signature) and verifying[1].meaning == "verified"
    with batch.store.reading() as conn:
        (row,) = read_qc_results(conn, batch.run_id)
    assert row.verified_by == "lab.ito"


def test_endotoxin_is_normalised_per_kg(batch: Batch) -> None:
    act = add_result(
        batch.store,
        batch.site.sign_in("lab.chen"),
        batch.run_id,
        entry(test="endotoxin", value=0.5, unit="EU/mL"),
    )
    with batch.store.reading() as conn:
        values = {
            row[0]: float(row[1])  # PostgreSQL's json_extract gives text
            for row in conn.execute(
                "SELECT json_extract(body, '$.payload.name'), json_extract(body,"
                " '$.payload.value') FROM records WHERE run_id = ? AND kind = 'batch_value'",
                (batch.run_id,),
            )
        }
    assert act.observed == pytest.approx(0.5 * values["final volume ml"] / 70.0)
    assert act.verdict == "pass"


def test_oos_opens_deviation_atomically(batch: Batch) -> None:
    chen = batch.site.sign_in("lab.chen")
    act = add_result(
        batch.store, chen, batch.run_id, entry(test="endotoxin", value=9.0, unit="EU/mL")
    )
    assert act.verdict == "fail"
    assert act.deviation_id == f"DEV-{batch.run_id[:12]}-S01"
    records = batch.site.new_records(act.ref.seq - 1)
    kinds = [type(r).__name__ for r in records]
    assert kinds == ["QcResultEntered", "Signature", "DeviationRaised", "Signature"]
    raised = records[2]
    assert isinstance(raised, DeviationRaised)
    assert (raised.origin, raised.qc_result) == ("qc", act.result_id)
    assert raised.title.startswith("OOS: endotoxin 8.") and raised.title.endswith("> 5 EU/kg")
    with batch.store.reading() as conn:
        deviations = read_deviations(conn, run_id=batch.run_id)
    assert [d.deviation_id for d in deviations][-1] == act.deviation_id


def test_oos_result_and_deviation_commit_together_or_not_at_all(
    batch: Batch, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*args: object) -> None:
        raise RuntimeError("controller died between the result and its deviation")

    monkeypatch.setattr(qc_module, "open_oos_deviation", crash)
    head = batch.site.head()
    with pytest.raises(RuntimeError, match="died"):
        add_result(
            batch.store,
            batch.site.sign_in("lab.chen"),
            batch.run_id,
            entry(test="endotoxin", value=9.0, unit="EU/mL"),
        )
    assert batch.site.new_records(head) == []
    with batch.store.reading() as conn:
        assert read_qc_results(conn, batch.run_id) == []


@pytest.mark.parametrize(
    ("change", "cause", "message"),
    [
        ({"test": "potency"}, "unknown_test", "'potency' is not a release test"),
        ({"unit": "fraction"}, "unit", "in 'fraction' but the test declares '%'"),
        ({"value": None}, "value_form", "exactly one of"),
        ({"text": "fine"}, "value_form", "exactly one of"),
        ({"value": math.nan}, "value_form", "not a finite number"),
        ({"value": math.inf}, "value_form", "not a finite number"),
        ({"test": "sterility", "unit": ""}, "value_kind", "qualitative"),
        (
            {"test": "endotoxin", "value": None, "text": "<0.5", "unit": "EU/mL"},
            "value_kind",
            "not a number",
        ),
        ({"coi": "W123426ZZZZZZ"}, "sample_identity", "chain of identity"),
        ({"din": "W12342600004205"}, "sample_identity", "none of the run's containers"),
        ({"din": "W123426999999"}, "sample_identity", "not this batch's"),
        ({"tested_on": date(2025, 12, 31)}, "tested_on", "from the run's start"),
        ({"tested_on": date(2999, 1, 1)}, "tested_on", "to today"),
    ],
)
def test_add_refusals(batch: Batch, change: dict[str, Any], cause: str, message: str) -> None:
    head = batch.site.head()
    with pytest.raises(ReviewRefusedError, match=message):
        add_result(batch.store, batch.site.sign_in("lab.chen"), batch.run_id, entry(**change))
    assert [r.cause for r in refusals(batch, head)] == [cause]
    with batch.store.reading() as conn:
        assert read_qc_results(conn, batch.run_id) == []


def test_sample_container_must_be_the_tests(batch: Batch) -> None:
    with batch.store.reading() as conn:
        dins = dict(
            conn.execute(
                "SELECT key, din || flag FROM containers WHERE run_id = ?", (batch.run_id,)
            ).fetchall()
        )
    chen = batch.site.sign_in("lab.chen")
    with pytest.raises(ReviewRefusedError, match="but the test samples 'final product'"):
        add_result(batch.store, chen, batch.run_id, entry(din=dins["QC sample"]))
    act = add_result(batch.store, chen, batch.run_id, entry(din=dins["final product"]))
    assert act.verdict == "pass"


def test_unknown_and_unended_runs_refused(batch: Batch) -> None:
    head = batch.site.head()
    with pytest.raises(ReviewRefusedError, match="no run"):
        add_result(batch.store, batch.site.sign_in("lab.chen"), "ab" * 16, entry())
    with batch.store.reading() as conn:
        ended = conn.execute(
            "SELECT seq FROM records WHERE run_id = ? AND kind = 'run_ended'", (batch.run_id,)
        ).fetchone()
    assert ended is not None
    assert [r.cause for r in refusals(batch, head)] == ["unknown_run"]


def test_qc_enter_needs_qc(batch: Batch) -> None:
    head = batch.site.head()
    with pytest.raises(PermissionRefusedError, match=r"needs qc\.enter \(qc\)"):
        add_result(batch.store, batch.site.sign_in("qa.smith"), batch.run_id, entry())
    assert [r.cause for r in refusals(batch, head)] == ["permission"]


def test_second_result_refused_until_invalidated(batch: Batch) -> None:
    chen = batch.site.sign_in("lab.chen")
    first = add_result(batch.store, chen, batch.run_id, entry())
    head = batch.site.head()
    with pytest.raises(ReviewRefusedError, match="a retest is recorded only after QA"):
        add_result(batch.store, chen, batch.run_id, entry(value=88.0))
    assert [r.cause for r in refusals(batch, head)] == ["retest_needs_invalidation"]

    with pytest.raises(PermissionRefusedError):
        invalidate_result(batch.store, chen, first.result_id, cause="pipetting error found")
    with pytest.raises(BadInputError, match="cause"):
        invalidate_result(batch.store, batch.site.sign_in("qa.smith"), first.result_id, cause="x")
    done = invalidate_result(
        batch.store, batch.site.sign_in("qa.smith"), first.result_id, cause="pipetting error found"
    )
    records = batch.site.new_records(done.ref.seq - 1)
    assert isinstance(records[0], QcResultInvalidated)
    assert isinstance(records[1], Signature) and records[1].meaning == "approved"
    second = add_result(batch.store, chen, batch.run_id, entry(value=88.0))
    assert second.result_id.endswith("-viability-02")
    with batch.store.reading() as conn:
        assert [(r.result_id, r.status) for r in read_qc_results(conn, batch.run_id)] == [
            (first.result_id, "invalidated"),
            (second.result_id, "valid"),
        ]


def test_verify_refusals(batch: Batch) -> None:
    chen, ito = batch.site.sign_in("lab.chen"), batch.site.sign_in("lab.ito")
    act = add_result(batch.store, chen, batch.run_id, entry())
    with pytest.raises(ReviewRefusedError, match="no QC result"):
        verify_result(batch.store, ito, "QC-000000000000-viability-01")
    with pytest.raises(PermissionRefusedError):
        verify_result(batch.store, batch.site.sign_in("op.ann"), act.result_id)
    verify_result(batch.store, ito, act.result_id)
    with pytest.raises(ReviewRefusedError, match=r"was verified by lab\.ito"):
        verify_result(batch.store, batch.site.sign_in("qa.lee"), act.result_id)


def test_the_batch_carries_its_release_plan(batch: Batch) -> None:
    with batch.store.reading() as conn:
        (body,) = conn.execute(
            "SELECT json_extract(body, '$.payload') FROM records WHERE run_id = ?"
            " AND kind = 'release_plan'",
            (batch.run_id,),
        ).fetchone()
    assert len(ReleasePlan.model_validate_json(body).tests) == 8


# -- verify (cellauto.site.replay_qc) ------------------------------------------------------
def _verify(batch: Batch) -> str:
    with Journal(batch.path, create=False) as journal:
        report = verify_journal(journal, site_replay=replay_problem)
    return "intact" if report.intact else str(report)


def _forge(batch: Batch, record: Any) -> None:
    with batch.store.transaction() as tx:
        tx.append(record)


def _forged_entry(batch: Batch, **change: Any) -> QcResultEntered:
    body = QcResultBody(
        result_id=f"QC-{batch.run_id[:12]}-viability-01",
        test="viability",
        sample=SampleIdentity(sample_id="S-1", coi="W123426A1B2C3"),
        method="m",
        analyst="a",
        tested_on=TESTED_ON,
        instrument="i",
        value=60.0,
        unit="%",
    )
    fields: dict[str, Any] = {
        "by": "lab.chen",
        "terminal": TERMINAL,
        "run_id": batch.run_id,
        "result": body,
        "observed": 60.0,
        "verdict": "pass",
    }
    fields.update(change)
    return QcResultEntered(**fields)


def test_verify_accepts_the_acts(batch: Batch) -> None:
    chen = batch.site.sign_in("lab.chen")
    act = add_result(batch.store, chen, batch.run_id, entry())
    verify_result(batch.store, batch.site.sign_in("lab.ito"), act.result_id)
    add_result(batch.store, chen, batch.run_id, entry(test="endotoxin", value=9.0, unit="EU/mL"))
    assert _verify(batch) == "intact"


def test_verify_recomputes_the_verdict(batch: Batch) -> None:
    _forge(batch, _forged_entry(batch))
    assert "says 60.0 (pass), but its value and run" in _verify(batch)


def test_verify_needs_the_oos_deviation(batch: Batch) -> None:
    _forge(batch, _forged_entry(batch, verdict="fail"))
    assert "no deviation was opened with it" in _verify(batch)


def test_verify_recomputes_result_ids(batch: Batch) -> None:
    forged = _forged_entry(batch, observed=60.0, verdict="fail")
    body = forged.result.model_copy(update={"result_id": f"QC-{batch.run_id[:12]}-viability-07"})
    _forge(batch, forged.model_copy(update={"result": body}))
    assert "is not the derived" in _verify(batch)


def test_verify_refuses_self_verification(batch: Batch) -> None:
    act = add_result(batch.store, batch.site.sign_in("lab.chen"), batch.run_id, entry())
    _forge(
        batch,
        QcResultVerified(
            by="lab.chen",
            terminal=TERMINAL,
            run_id=batch.run_id,
            result_id=act.result_id,
            entry=act.ref,
        ),
    )
    assert "which they entered themselves" in _verify(batch)


def test_a_refused_signature_refuses_the_act(batch: Batch, monkeypatch: pytest.MonkeyPatch) -> None:
    """The act's refusal and the signature's are journaled; the entry rolled back."""
    import cellauto.site.signatures as signatures
    from cellauto.errors import TrainingRequiredError
    from cellauto.records.site_payloads import SignatureRefused
    from cellauto.site.training import TrainingCheck

    monkeypatch.setattr(
        signatures,
        "check_training",
        lambda *a, **k: TrainingCheck([], "lab.chen has no current training on the QC SOP"),
    )
    head = batch.site.head()
    with pytest.raises(TrainingRequiredError, match="QC SOP"):
        add_result(batch.store, batch.site.sign_in("lab.chen"), batch.run_id, entry())
    records = batch.site.new_records(head)
    assert [type(r).__name__ for r in records] == ["ReviewActRefused", "SignatureRefused"]
    assert isinstance(records[1], SignatureRefused) and records[1].cause == "training"
    assert [r.cause for r in refusals(batch, head)] == ["signature"]
    with batch.store.reading() as conn:
        assert read_qc_results(conn, batch.run_id) == []


def test_tested_on_is_checked_in_the_sites_time_zone(batch: Batch) -> None:
    """A run started at 03:00 UTC on 20 January started on the 19th in New York: a sample
    tested that evening, local time, is within the run."""
    import dataclasses
    from datetime import UTC, datetime

    from cellauto.review.qc_eval import QcInputError
    from cellauto.review.qc_run import judge, run_facts
    from cellauto.site.policy import current_policy

    with batch.store.reading() as conn:
        facts = run_facts(conn, batch.run_id)
        policy, _ = current_policy(conn)
    assert facts is not None
    start = datetime(2026, 1, 20, 3, 0, tzinfo=UTC)
    facts = dataclasses.replace(facts, started_ns=int(start.timestamp()) * 1_000_000_000)
    body = qc_module._body(entry(tested_on=date(2026, 1, 19)), facts, "QC-x-viability-01")
    new_york = policy.model_copy(update={"time_zone": "America/New_York"})
    assert judge(facts, body, date(2026, 1, 25), new_york).verdict == "pass"
    utc = policy.model_copy(update={"time_zone": "UTC"})
    with pytest.raises(QcInputError, match=r"from the run's start \(2026-01-20\)"):
        judge(facts, body, date(2026, 1, 25), utc)
