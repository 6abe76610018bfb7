"""Deviations as a workflow: every transition of TRANSITIONS, the CAPA rule, segregation,
refusals journaled, raising (with a Hold of an active run), and the records each act
leaves."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from cellauto.errors import BadInputError, PermissionRefusedError, ReviewRefusedError
from cellauto.records import Journal
from cellauto.records.lims_schema import LimsColumns, LimsSchema
from cellauto.records.refs import Meaning, RecordRef, SiteRef
from cellauto.records.site_payload_base import SitePayload
from cellauto.records.site_payloads import RunCommandRequested, Signature
from cellauto.records.site_payloads_review import (
    SITE_REVIEW_PAYLOADS,
    BatchDisposed,
    CertificateOfAnalysis,
    Classification,
    DeviationClassified,
    DeviationClosed,
    DeviationInvestigated,
    DeviationRaised,
    LimsSchemaDefined,
    QcResultBody,
    QcResultEntered,
    QcResultInvalidated,
    QcResultsImported,
    QcResultVerified,
    SampleIdentity,
)
from cellauto.records.task_rows import read_request
from cellauto.records.verify import verify_journal
from cellauto.review.deviation_rules import (
    ACTS,
    CAPA_RULE,
    STATUSES,
    TRANSITIONS,
    capa_problem,
    transition_problem,
)
from cellauto.review.read import runner_deviations
from cellauto.review.wording import describe_review
from cellauto.site.replay import replay_problem
from tests.site.chain import TERMINAL

from .conftest import Batch
from .devs import (
    causes,
    classify,
    close,
    investigate,
    make_active,
    raise_one,
    refusals,
    row,
    runner_id,
    withdraw,
)


def _intact(batch: Batch) -> bool:
    with Journal(batch.path, create=False) as journal:
        report = verify_journal(journal, site_replay=replay_problem)
    return report.site.intact


def test_major_walk_from_open_to_closed_with_capa(batch: Batch) -> None:
    dev = runner_id(batch)
    assert row(batch, dev).status == "open"
    classify(batch, dev, "major")
    assert (row(batch, dev).status, row(batch, dev).classification) == ("classified", "major")
    head = batch.site.head()
    with pytest.raises(ReviewRefusedError, match="only a minor deviation may close"):
        close(batch, dev)
    assert causes(batch, head) == ["needs_investigation"]
    investigate(batch, dev)
    assert (row(batch, dev).status, row(batch, dev).investigated_by) == (
        "investigated",
        "sup.jones",
    )
    done = close(batch, dev, capa="CAPA-2026-0012")
    closed = row(batch, dev)
    assert (closed.status, closed.capa) == ("closed", "CAPA-2026-0012")
    assert closed.closed_wall_ns is not None
    records = batch.site.records()
    signature = records[done.signature.seq]
    assert isinstance(signature, Signature) and signature.meaning == Meaning.APPROVED
    assert signature.signed.seq == done.record.seq
    assert "closure of" in signature.statement and "CAPA-2026-0012" in signature.statement
    assert _intact(batch)


def test_the_first_classification_names_the_runners_record(batch: Batch) -> None:
    dev = runner_id(batch)
    done = classify(batch, dev, "minor")
    record = batch.site.records()[done.record.seq]
    with batch.store.reading() as conn:
        recorded = runner_deviations(conn, batch.run_id)[0]
    assert isinstance(record, DeviationClassified)
    assert record.run_record is not None
    assert (record.run_record.seq, record.run_record.hash) == (recorded.seq, recorded.hash)
    again = classify(batch, dev, "major", reason="the excursion lasted longer than reported")
    second = batch.site.records()[again.record.seq]
    assert isinstance(second, DeviationClassified)
    assert (second.run_record, second.previous) == (None, Classification.MINOR)


def test_unknown_deviation_id_refused(batch: Batch) -> None:
    head = batch.site.head()
    with pytest.raises(BadInputError, match="not a deviation id"):
        classify(batch, "DEV-42")
    assert causes(batch, head) == []
    for unknown in (
        f"DEV-{batch.run_id[:12]}-07",
        f"DEV-{batch.run_id[:12]}-S01",
        "DEV-0123456789ab-01",
    ):
        head = batch.site.head()
        with pytest.raises(ReviewRefusedError, match="no deviation"):
            classify(batch, unknown)
        assert causes(batch, head) == ["unknown_deviation"]


def test_classify_needs_qa(batch: Batch) -> None:
    head = batch.site.head()
    with pytest.raises(PermissionRefusedError, match=r"needs deviation\.classify \(qa\)"):
        classify(batch, runner_id(batch), by="sup.jones")
    assert causes(batch, head) == ["permission"]
    assert row(batch, runner_id(batch)).status == "open"


def test_investigate_before_classify_refused(batch: Batch) -> None:
    head = batch.site.head()
    with pytest.raises(ReviewRefusedError, match="not classified yet"):
        investigate(batch, runner_id(batch))
    assert causes(batch, head) == ["not_classified"]


def test_minor_close_without_reason_refused(batch: Batch) -> None:
    dev = runner_id(batch)
    classify(batch, dev, "minor")
    head = batch.site.head()
    with pytest.raises(ReviewRefusedError, match="needs a written reason"):
        close(batch, dev, capa=None)
    assert causes(batch, head) == ["reason_required"]
    close(batch, dev, capa=None, reason="a 3 h excursion of 1.9 °C has no impact on this product")
    assert row(batch, dev).status == "closed"
    assert _intact(batch)


@pytest.mark.parametrize(
    ("cls", "capa", "no_capa", "refused"),
    [
        ("critical", None, "the root cause is fixed for good", True),
        ("critical", None, None, True),
        ("critical", "CAPA-7", None, False),
        ("major", None, None, True),
        ("major", None, "the root cause is fixed for good", False),
        ("major", "CAPA-7", None, False),
        ("minor", None, None, False),
        ("minor", "CAPA-7", None, False),
    ],
)
def test_capa_rule(
    batch: Batch, cls: str, capa: str | None, no_capa: str | None, refused: bool
) -> None:
    dev = runner_id(batch)
    classify(batch, dev, cls)
    investigate(batch, dev)
    head = batch.site.head()
    if refused:
        with pytest.raises(ReviewRefusedError, match=f"a {cls} deviation closes"):
            close(batch, dev, capa=capa, no_capa_reason=no_capa)
        assert causes(batch, head) == ["capa_rule"]
        assert row(batch, dev).status == "investigated"
    else:
        close(batch, dev, capa=capa, no_capa_reason=no_capa)
        assert row(batch, dev).status == "closed"


def test_capa_rule_is_data() -> None:
    assert CAPA_RULE == {
        Classification.CRITICAL: "required",
        Classification.MAJOR: "capa_or_reason",
        Classification.MINOR: "optional",
    }
    assert capa_problem(Classification.MINOR, "CAPA-1", "a reason that is long") is not None


def test_investigator_cannot_close(batch: Batch) -> None:
    dev = runner_id(batch)
    classify(batch, dev, "major")
    investigate(batch, dev, by="qa.lee")
    head = batch.site.head()
    with pytest.raises(ReviewRefusedError, match=r"qa\.lee investigated"):
        close(batch, dev, by="qa.lee")
    assert causes(batch, head) == ["segregation"]
    close(batch, dev, by="qa.smith")
    assert row(batch, dev).status == "closed"


def test_runner_deviation_cannot_be_withdrawn(batch: Batch) -> None:
    head = batch.site.head()
    with pytest.raises(ReviewRefusedError, match="was recorded by the run"):
        withdraw(batch, runner_id(batch))
    assert causes(batch, head) == ["runner_deviation"]


def _to_status(batch: Batch, status: str) -> str:
    """A deviation raised by a person, brought to ``status`` (classified minor)."""
    dev = raise_one(batch).deviation_id
    if status == "withdrawn":
        withdraw(batch, dev)
    elif status != "open":
        classify(batch, dev, "minor")
        if status in ("investigated", "closed"):
            investigate(batch, dev)
        if status == "closed":
            close(batch, dev)
    assert row(batch, dev).status == status
    return dev


_ACT = {
    "classify": lambda b, d: classify(b, d, "minor"),
    "reclassify": lambda b, d: classify(b, d, "major", reason="more bags were affected"),
    "investigate": lambda b, d: investigate(b, d, reason="the root cause is amended"),
    "close": lambda b, d: close(b, d, reason="a label reprinted; no product impact"),
    "withdraw": withdraw,
}


@pytest.mark.parametrize(("status", "act"), sorted(TRANSITIONS))
def test_every_transition(batch: Batch, status: str, act: str) -> None:
    """Each (status, act) pair does what TRANSITIONS says, with every other condition met
    (a deviation raised on the site, classified minor, a reason given)."""
    rule = TRANSITIONS[status, act]  # type: ignore[index]
    dev = _to_status(batch, status)
    if status == "open" and act == "reclassify":
        act_of = _ACT["reclassify"]  # the act classifies; with a reason it is still first
        rule = TRANSITIONS["open", "classify"]
    else:
        act_of = _ACT[act]
    head = batch.site.head()
    if rule.to is None:
        with pytest.raises(ReviewRefusedError):
            act_of(batch, dev)
        assert causes(batch, head) == [rule.cause]
        assert row(batch, dev).status == status
    else:
        act_of(batch, dev)
        assert row(batch, dev).status == rule.to
        assert causes(batch, head) == []


def test_transitions_cover_every_pair_and_their_conditions() -> None:
    assert set(TRANSITIONS) == {(s, a) for s in STATUSES for a in ACTS}
    minor, major = Classification.MINOR, Classification.MAJOR

    def cause(status: str, act: str, **kw: object) -> str:
        args = {"origin": "person", "classification": minor, "reason": "why", **kw}
        return transition_problem(status, act, **args)[0]  # type: ignore[arg-type]

    assert cause("open", "reclassify") == "not_classified"  # no class yet: a first classify
    assert cause("classified", "close", classification=major) == "needs_investigation"
    assert cause("classified", "close", reason=" ") == "reason_required"
    assert cause("classified", "reclassify", reason="") == "reason_required"
    assert cause("investigated", "investigate", reason="") == "reason_required"
    assert cause("open", "withdraw", origin="runner") == "runner_deviation"
    assert cause("open", "withdraw", origin="qc") == "qc_deviation"
    assert cause("classified", "withdraw", origin="qc") == "qc_deviation"
    assert cause("classified", "close", origin="qc") == "oos_needs_investigation"
    assert cause("investigated", "close", origin="qc", classification=minor) == ""
    assert cause("investigated", "withdraw") == "investigated"
    assert cause("investigated", "close", classification=major, reason="") == ""


def test_reclassification_needs_a_reason_and_keeps_the_investigation(batch: Batch) -> None:
    dev = runner_id(batch)
    classify(batch, dev, "minor")
    head = batch.site.head()
    with pytest.raises(ReviewRefusedError, match="give a reason to reclassify"):
        classify(batch, dev, "major")
    assert causes(batch, head) == ["already_classified"]
    investigate(batch, dev)
    classify(batch, dev, "critical", reason="the excursion reached 39.9 °C, not 38.5 °C")
    after = row(batch, dev)
    assert (after.status, after.classification) == ("investigated", "critical")
    assert _intact(batch)


def test_raise_unknown_run_or_step(batch: Batch) -> None:
    head = batch.site.head()
    with pytest.raises(ReviewRefusedError, match="no run"):
        raise_deviation_on(batch, "0123456789ab" * 2)
    with pytest.raises(ReviewRefusedError, match="has no step 'mix'"):
        raise_one(batch, step="mix")
    assert causes(batch, head) == ["unknown_run", "unknown_step"]
    first = raise_one(batch, step="expand")
    second = raise_one(batch, by="lab.chen")
    key = batch.run_id[:12]
    assert (first.deviation_id, second.deviation_id) == (f"DEV-{key}-S01", f"DEV-{key}-S02")
    raised = batch.site.records()[first.record.seq]
    assert isinstance(raised, DeviationRaised)
    assert (raised.origin, raised.step, raised.hold_requested) == ("person", "expand", False)
    signature = batch.site.records()[first.signature.seq]
    assert isinstance(signature, Signature) and signature.meaning == Meaning.PERFORMED
    assert row(batch, first.deviation_id).status == "open"
    assert _intact(batch)


def raise_deviation_on(batch: Batch, run_id: str) -> None:
    from cellauto.review.deviations import raise_deviation

    raise_deviation(
        batch.store,
        batch.site.sign_in("op.ann"),
        run_id,
        title="label smudged",
        description="the label of the final bag was smudged",
    )


def test_raise_observed_in_future_refused(batch: Batch) -> None:
    head = batch.site.head()
    later = datetime.now(UTC) + timedelta(days=1)
    with pytest.raises(ReviewRefusedError, match="in the future"):
        raise_one(batch, observed_at=later)
    assert causes(batch, head) == ["observed_in_future"]


@pytest.mark.parametrize(
    ("act", "match"),
    [
        (lambda b: raise_one(b, title="bad"), "title"),
        (lambda b: raise_one(b, description="x" * 4001), "description"),
        (lambda b: classify_short(b), "impact_assessment"),
        (lambda b: close(b, runner_id(b), capa="C A P A"), "capa"),
        (
            lambda b: close(b, runner_id(b), capa="CAPA-1", no_capa_reason="long enough reason"),
            "not both",
        ),
    ],
)
def test_text_limits(batch: Batch, act: object, match: str) -> None:
    head = batch.site.head()
    with pytest.raises(BadInputError, match=match) as raised:
        act(batch)  # type: ignore[operator]
    assert not isinstance(raised.value, ReviewRefusedError)
    assert [r for r in batch.site.new_records(head) if r.kind.value != "session_opened"] == []


def classify_short(batch: Batch) -> None:
    from cellauto.review.deviations import classify_deviation

    classify_deviation(
        batch.store,
        batch.site.sign_in("qa.smith"),
        runner_id(batch),
        classification="major",
        impact_assessment="short",
    )


def test_evidence_hashed_and_missing_evidence_refused(batch: Batch, tmp_path: Path) -> None:
    dev = runner_id(batch)
    classify(batch, dev, "major")
    head = batch.site.head()
    with pytest.raises(ReviewRefusedError, match="evidence cannot be read"):
        investigate(batch, dev, evidence=[tmp_path / "absent.pdf"])
    assert causes(batch, head) == ["evidence_missing"]
    trend = tmp_path / "temperature-trend.csv"
    trend.write_bytes(b"t,temp\n72,39.9\n")
    done = investigate(batch, dev, evidence=[trend])
    record = batch.site.records()[done.record.seq]
    assert isinstance(record, DeviationInvestigated)
    assert [(e.name, e.sha256, e.size_bytes) for e in record.evidence] == [
        ("temperature-trend.csv", hashlib.sha256(trend.read_bytes()).hexdigest(), 15)
    ]


def test_raise_with_hold_on_an_active_run(batch: Batch) -> None:
    head = batch.site.head()
    with pytest.raises(ReviewRefusedError, match="has ended"):
        raise_one(batch, hold=True)
    assert causes(batch, head) == ["run_ended"]
    make_active(batch)
    done = raise_one(batch, by="sup.jones", hold=True)
    assert done.hold is not None
    records = batch.site.records()
    raised, signed, request, request_signed = records[done.record.seq : done.record.seq + 4]
    assert isinstance(raised, DeviationRaised) and raised.hold_requested
    assert isinstance(signed, Signature) and isinstance(request_signed, Signature)
    assert isinstance(request, RunCommandRequested) and request.command == "hold"
    assert done.deviation_id in request.reason
    with batch.store.reading() as conn:
        pending = read_request(conn, done.hold.row.request_id)
        wall = conn.execute(
            "SELECT DISTINCT wall_time_ns FROM site_records WHERE seq BETWEEN ? AND ?",
            (done.record.seq, done.record.seq + 3),
        ).fetchall()
    assert pending is not None and pending.status == "pending"
    assert len(wall) == 1  # one transaction


def test_a_refused_hold_signature_refuses_the_raise(batch: Batch) -> None:
    make_active(batch)
    head = batch.site.head()
    with pytest.raises(PermissionRefusedError, match=r"run\.hold"):
        raise_one(batch, by="lab.chen", hold=True)
    assert causes(batch, head) == ["signature", "permission"]
    assert [r for r in batch.site.new_records(head) if isinstance(r, DeviationRaised)] == []


def test_withdraw_a_raised_deviation(batch: Batch) -> None:
    dev = raise_one(batch).deviation_id
    head = batch.site.head()
    with pytest.raises(PermissionRefusedError):
        withdraw(batch, dev, by="sup.jones")
    assert causes(batch, head) == ["permission"]
    withdraw(batch, dev)
    assert row(batch, dev).status == "withdrawn"
    head = batch.site.head()
    with pytest.raises(ReviewRefusedError, match="nothing more may be done"):
        classify(batch, dev)
    assert causes(batch, head) == ["closed"]
    assert not [r for r in refusals(batch, head) if r.kind.value == "signature_refused"]


def test_closed_by_records(batch: Batch) -> None:
    dev = runner_id(batch)
    classify(batch, dev, "minor")
    done = close(batch, dev, capa=None, no_capa_reason=None, reason="a trivial excursion")
    record = batch.site.records()[done.record.seq]
    assert isinstance(record, DeviationClosed) and record.reason == "a trivial excursion"


# -- wording ------------------------------------------------------------------------------
def _review_samples(run_id: str) -> list[SitePayload]:
    key = run_id[:12]
    common = {"by": "lab.chen", "terminal": TERMINAL}
    body = QcResultBody(
        result_id=f"QC-{key}-endotoxin-01",
        test="endotoxin",
        sample=SampleIdentity(sample_id="S-1", coi="COI-1"),
        method="LAL kinetic",
        analyst="L. Chen",
        tested_on=date(2026, 12, 20),
        instrument="LAL-01",
        value=0.2,
        unit="EU/mL",
    )
    columns = LimsColumns(
        sample_id="s",
        coi="c",
        test="t",
        value="v",
        unit="u",
        method="m",
        analyst="a",
        tested_on="d",
        instrument="i",
        status="st",
    )
    ref = SiteRef(seq=3, hash="0" * 64)
    coa = CertificateOfAnalysis(
        product="CAR-T",
        batch_din=None,
        coi=None,
        protocol="car_t",
        protocol_version="1.2.0",
        manufactured_from=datetime(2026, 12, 1, tzinfo=UTC),
        manufactured_to=None,
        simulated=True,
        lines=[],
        deviations=[],
        decision="released",
        decided_by="qa.lee",
        decided_at=datetime(2026, 12, 21, tzinfo=UTC),
    )
    return [
        QcResultEntered(**common, run_id=run_id, result=body, observed=2.9, verdict="pass"),
        QcResultsImported(
            **common,
            run_id=run_id,
            file_name="lims.csv",
            file_sha256="a" * 64,
            file_bytes=9,
            schema_name="sim",
            schema_ref=ref,
            results=[body],
            observed=[2.9],
            verdicts=["fail"],
        ),
        QcResultVerified(**common, run_id=run_id, result_id=body.result_id, entry=ref),
        QcResultInvalidated(
            **common, run_id=run_id, result_id=body.result_id, cause="lab error confirmed"
        ),
        LimsSchemaDefined(
            **common,
            name="sim",
            version=1,
            lims=LimsSchema(format="csv", columns=columns, tests={"ENDO": "endotoxin"}),
        ),
        BatchDisposed(
            **common,
            run_id=run_id,
            decision="released",
            simulated=True,
            run_head=RecordRef(chain="run", run_id=run_id, seq=9, hash="b" * 64, kind="run_ended"),
            site_verified_through=ref,
            checked=["qc"],
            deviations=[],
            results=[body.result_id],
            coa=coa,
            coa_sha256="c" * 64,
        ),
    ]


def test_every_review_kind_has_words(batch: Batch, tmp_path: Path) -> None:
    dev = runner_id(batch)
    classify(batch, dev, "minor")
    evidence = tmp_path / "trend.csv"
    evidence.write_text("t,temp\n")
    investigate(batch, dev, evidence=[evidence])
    close(batch, dev, capa=None, no_capa_reason="a one-off excursion, fixed")
    withdraw(batch, raise_one(batch, step="expand", hold=False).deviation_id)
    with pytest.raises(ReviewRefusedError):
        withdraw(batch, dev)
    recorded = [r for r in batch.site.records() if type(r) in SITE_REVIEW_PAYLOADS]
    every = [*recorded, *_review_samples(batch.run_id)]
    assert {type(r) for r in every} == set(SITE_REVIEW_PAYLOADS)
    lines = [describe_review(r) for r in every]
    assert all("\n" not in line for line in lines)
    text = "\n".join(lines)
    for expected in (
        f"DEVIATION CLASSIFIED {dev} (run record #",
        f"DEVIATION INVESTIGATED {dev} by sup.jones: root cause equipment",
        "evidence: trend.csv",
        f"DEVIATION CLOSED {dev} by qa.smith, no CAPA: a one-off excursion, fixed",
        f"DEVIATION RAISED DEV-{batch.run_id[:12]}-S01 by op.ann at step expand",
        f"DEVIATION WITHDRAWN DEV-{batch.run_id[:12]}-S01",
        f"REFUSED withdraw of {dev} by qa.smith: closed",
        "QC RESULT ENTERED by lab.chen: QC-",
        "= 0.2 EU/mL (as compared: 2.9) PASS",
        "QC RESULTS IMPORTED by lab.chen from lims.csv",
        "1 results, 1 failing",
        "QC RESULT VERIFIED QC-",
        "QC RESULT INVALIDATED QC-",
        "LIMS SCHEMA DEFINED sim v1",
        "BATCH RELEASED by lab.chen (SIMULATION — NOT A PRODUCT)",
    ):
        assert expected in text
    with pytest.raises(ValueError, match="no review site record"):
        describe_review(Signature.model_construct(kind="signature"))  # type: ignore[call-arg]


def test_no_investigator_closes_even_after_another_amended_the_investigation(
    batch: Batch,
) -> None:
    dev = runner_id(batch)
    classify(batch, dev)
    investigate(batch, dev, by="qa.lee")
    investigate(batch, dev, by="sup.jones", reason="root cause corrected after a retest")
    head = batch.site.head()
    with pytest.raises(ReviewRefusedError, match="investigated"):
        close(batch, dev, by="qa.lee")
    assert causes(batch, head) == ["segregation"]
    close(batch, dev, by="qa.smith")


def test_an_oos_deviation_is_investigated_never_withdrawn(batch: Batch) -> None:
    from datetime import date

    from cellauto.review.qc import QcResultInput, add_result

    failing = QcResultInput(
        test="viability", sample_id="S-1", method="7-AAD", analyst="L. Chen",
        tested_on=date(2026, 1, 20), instrument="FLOW-02", value=61.0, unit="%",
    )  # fmt: skip
    oos = add_result(batch.store, batch.site.sign_in("lab.chen"), batch.run_id, failing)
    dev = oos.deviation_id
    assert dev is not None and dev.endswith("-S01")
    head = batch.site.head()
    with pytest.raises(ReviewRefusedError, match="never withdrawn"):
        withdraw(batch, dev)
    classify(batch, dev, "minor")
    with pytest.raises(ReviewRefusedError, match="every OOS"):
        close(batch, dev, reason="looks like a pipetting slip", capa=None)
    with pytest.raises(ReviewRefusedError, match="never withdrawn"):
        withdraw(batch, dev)
    assert causes(batch, head) == ["qc_deviation", "oos_needs_investigation", "qc_deviation"]
    investigate(batch, dev)
    close(batch, dev, capa=None)
