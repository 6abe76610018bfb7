"""QA's disposition: a release refused naming every reason (journaled), a rejection
always possible, one decision per batch, the certificate of analysis in the record."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from cellauto.cli import main
from cellauto.errors import (
    BadInputError,
    PermissionRefusedError,
    ReleaseRefusedError,
    ReviewRefusedError,
)
from cellauto.records import Journal
from cellauto.records.refs import Meaning
from cellauto.records.release_plan import Qualitative, ReleasePlan, ReleaseTest
from cellauto.records.site_payloads import Signature
from cellauto.records.site_payloads_review import (
    BatchDisposed,
    QcResultBody,
    QcResultEntered,
    ReviewActRefused,
    SampleIdentity,
)
from cellauto.records.spec import Spec
from cellauto.review.batch_facts import batch_facts
from cellauto.review.coa import coa_sha256
from cellauto.review.disposition import dispose_batch, release_problems
from cellauto.review.ids import qc_result_id
from cellauto.review.read import read_disposition
from tests.raw_sql import journal_snapshot, raw_connect
from tests.site.chain import TERMINAL
from tests.site.conftest import own_password

from .conftest import Batch


def _release(batch: Batch, who: str = "qa.smith", decision: str = "release", reason: str = ""):  # type: ignore[no-untyped-def]
    with Journal(batch.path, create=False) as journal:
        return dispose_batch(
            batch.store,
            journal,
            batch.site.sign_in(who),
            batch.run_id,
            decision=decision,  # type: ignore[arg-type]
            reason=reason,
        )


def _codes(problems: list) -> list[str]:  # type: ignore[type-arg]
    return sorted({p.code for p in problems})


def test_a_release_is_refused_naming_every_reason_and_the_refusal_is_journaled(
    batch: Batch,
) -> None:
    head = batch.site.head()
    with pytest.raises(ReleaseRefusedError) as refused:
        _release(batch)
    assert _codes(refused.value.problems) == ["deviation_open", "qc_missing"]
    assert f"DEV-{batch.run_id[:12]}-01" in str(refused.value)
    new = batch.site.new_records(head)
    refusals = [r for r in new if isinstance(r, ReviewActRefused)]
    assert len(refusals) == 1 and refusals[0].act == "release"
    assert _codes(refusals[0].reasons) == ["deviation_open", "qc_missing"]
    assert not any(isinstance(r, BatchDisposed) for r in new)
    with batch.store.reading() as conn:
        assert read_disposition(conn, batch.run_id) is None


def test_a_rejection_is_possible_with_open_deviations_and_only_once(batch: Batch) -> None:
    outcome = _release(batch, decision="reject", reason="culture excursion, potency unknown")
    with batch.store.reading() as conn:
        row = read_disposition(conn, batch.run_id)
    assert row is not None and (row.decision, row.by_name) == ("rejected", "qa.smith")
    assert row.coa_sha256 == coa_sha256(outcome.coa)
    assert outcome.coa.simulated and outcome.coa.decision == "rejected"
    assert [d.status for d in outcome.coa.deviations] == ["open"]
    records = batch.site.records()
    signature = next(
        r for r in records if isinstance(r, Signature) and r.signed.seq == outcome.record.seq
    )
    assert signature.meaning == Meaning.REJECTED
    for decision, reason in (("release", ""), ("reject", "again")):
        with pytest.raises((ReleaseRefusedError, ReviewRefusedError), match="rejected by"):
            _release(batch, who="qa.lee", decision=decision, reason=reason)


def test_a_rejection_needs_a_reason_and_nothing_is_written(batch: Batch) -> None:
    head = batch.site.head()
    with pytest.raises(BadInputError, match="needs --reason"):
        _release(batch, decision="reject", reason="  ")
    assert batch.site.head() == head


@pytest.mark.parametrize("who", ["sup.jones", "lab.chen", "op.ann"])
def test_only_qa_disposes_and_a_refusal_is_journaled(batch: Batch, who: str) -> None:
    head = batch.site.head()
    with pytest.raises(PermissionRefusedError, match=r"batch\.release"):
        _release(batch, who=who, decision="reject", reason="not theirs to decide")
    (refusal,) = batch.site.new_records(head)[-1:]
    assert isinstance(refusal, ReviewActRefused) and refusal.cause == "permission"


def _plan() -> ReleasePlan:
    return ReleasePlan(
        product="CAR-T autologous",
        coi="COI-1",
        tests=[
            ReleaseTest(
                name="sterility",
                method="Ph. Eur. 2.6.27",
                spec=Qualitative(accept=("no growth",)),
            ),
            ReleaseTest(name="viability", method="NC-200", unit="%", spec=Spec(min=80, unit="%")),
            ReleaseTest(name="endotoxin", method="LAL", unit="EU/mL", spec=Spec(max=5)),
            ReleaseTest(
                name="VCN", method="ddPCR", unit="copies", spec=Spec(max=5), required=False
            ),
        ],
    )


def _entered(batch: Batch, test: str, by: str, *, value=None, text=None, verdict="pass"):  # type: ignore[no-untyped-def]
    body = QcResultBody(
        result_id=qc_result_id(batch.run_id, test, 1),
        test=test,
        sample=SampleIdentity(sample_id="S-1", coi="COI-1"),
        method="m",
        analyst=by,
        tested_on="2026-12-01",
        instrument="QC-1",
        value=value,
        text=text,
        unit="%" if value is not None else "",
    )
    record = QcResultEntered(
        by=by,
        terminal=TERMINAL,
        run_id=batch.run_id,
        result=body,
        observed=value if value is not None else text,
        verdict=verdict,
    )
    with batch.store.transaction() as tx:
        tx.append(record)


def test_qc_rules_name_missing_out_of_spec_and_unverified_results(batch: Batch) -> None:
    _entered(batch, "sterility", "lab.chen", text="no growth")
    _entered(batch, "viability", "lab.chen", value=72.0, verdict="fail")
    with Journal(batch.path, create=False) as journal, batch.store.reading() as conn:
        facts = batch_facts(journal, batch.run_id)
        facts.plan = _plan()
        problems = release_problems(journal, conn, batch.run_id, releaser="lab.chen", facts=facts)
    by_code: dict[str, list[str]] = {}
    for problem in problems:
        by_code.setdefault(problem.code, []).append(problem.subject)
    assert by_code["qc_missing"] == ["endotoxin"]  # VCN is not required
    assert by_code["qc_oos"] == ["viability"]
    assert sorted(by_code["qc_unverified"]) == ["sterility", "viability"]
    assert by_code["releaser_performed"] == ["lab.chen", "lab.chen"]
    assert "no_release_plan" not in by_code


def test_an_edited_run_record_stops_the_release(batch: Batch) -> None:
    conn = raw_connect(batch.path)
    conn.execute(
        "UPDATE records SET body = body || ' ' WHERE run_id = ? AND seq = 5",
        (batch.run_id,),
    )
    conn.close()
    with pytest.raises(ReleaseRefusedError) as refused:
        _release(batch)
    assert "journal_not_verifying" in _codes(refused.value.problems)


def _cli(batch: Batch, monkeypatch: pytest.MonkeyPatch, *argv: str, who: str | None = None) -> int:
    lines = f"{own_password(who)}\n" if who else ""
    monkeypatch.setattr("sys.stdin", io.StringIO(lines))
    extra = ["--as", who, "--password-stdin"] if who else []
    return main(["release", batch.run_id[:8], *argv, *extra, "--db", str(batch.path)])


def test_the_cli_checks_refuses_and_rejects(
    batch: Batch, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = journal_snapshot(batch.path)
    assert _cli(batch, monkeypatch, "--check") == 3
    out = capsys.readouterr().out
    assert "deviation_open" in out and "qc_missing" in out
    assert journal_snapshot(batch.path) == before
    assert _cli(batch, monkeypatch, "--decision", "release", who="qa.smith") == 2
    assert "release refused" in capsys.readouterr().out
    assert (
        _cli(batch, monkeypatch, "--decision", "reject", "--reason", "excursion", who="qa.lee") == 0
    )
    out = capsys.readouterr().out
    assert "rejected by qa.lee" in out and "SIMULATION" in out
    assert _cli(batch, monkeypatch, "--check") == 3
    assert "already_disposed" in capsys.readouterr().out


def test_a_qc_row_edited_to_pass_stops_the_release(batch: Batch) -> None:
    _entered(batch, "viability", "lab.chen", value=72.0, verdict="fail")
    conn = raw_connect(batch.path)
    conn.execute("UPDATE qc_results SET verdict = 'pass' WHERE run_id = ?", (batch.run_id,))
    conn.close()
    with pytest.raises(ReleaseRefusedError) as refused:
        _release(batch)
    reasons = [p for p in refused.value.problems if p.code == "journal_not_verifying"]
    assert {p.subject for p in reasons} == {"site chain", "review records"}
    assert any("qc_results" in p.detail for p in reasons)


def _verify(batch: Batch) -> str:
    from cellauto.records.verify import verify_journal
    from cellauto.site.replay import replay_problem

    with Journal(batch.path, create=False) as journal:
        report = verify_journal(journal, site_replay=replay_problem)
    return "" if report.intact else str(report.site.reason)


def test_verify_finds_a_decisions_signature_removed(batch: Batch) -> None:
    outcome = _release(batch, decision="reject", reason="excursion")
    assert _verify(batch) == ""
    conn = raw_connect(batch.path)
    conn.execute("DELETE FROM site_records WHERE seq = ?", (outcome.signature.seq,))
    conn.close()
    assert _verify(batch) != ""  # the chain itself breaks first: a record is missing


def test_verify_refuses_a_second_decision_written_around_the_act(batch: Batch) -> None:
    first = _release(batch, decision="reject", reason="excursion")
    with batch.store.reading() as conn:
        (body,) = conn.execute(
            "SELECT body FROM site_records WHERE seq = ?", (first.record.seq,)
        ).fetchone()
    import orjson

    again = BatchDisposed.model_validate(orjson.loads(body)["payload"])
    conn = raw_connect(batch.path)
    conn.execute("DELETE FROM dispositions")  # so the projection accepts the second row
    conn.close()
    with batch.store.transaction() as tx:
        tx.append(again)
    assert f"disposes of batch {batch.run_id}, which exists" in _verify(batch)


def test_the_run_export_carries_its_review_records_and_their_signatures(
    batch: Batch, tmp_path: Path
) -> None:
    import orjson

    from cellauto.records import export_run

    outcome = _release(batch, decision="reject", reason="excursion")
    with Journal(batch.path, create=False) as journal:
        export_run(journal, batch.run_id, tmp_path / "out")
    review = orjson.loads((tmp_path / "out" / "run.json").read_bytes())["review"]
    assert [(r["seq"], r["kind"]) for r in review] == [
        (outcome.record.seq, "batch_disposed"),
        (outcome.signature.seq, "signature"),
    ]
    assert review[0]["payload"]["coa_sha256"] == coa_sha256(outcome.coa)


def test_the_snapshot_verification_stands_only_if_nothing_was_appended_since(
    batch: Batch, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cellauto.review import disposition

    fake = disposition.ReleaseProblem(
        code="journal_not_verifying", subject="snapshot", detail="from the snapshot"
    )
    real = disposition._verify_before

    def same_state(store, journal, run_id):  # type: ignore[no-untyped-def]
        verified = real(store, journal, run_id)
        assert verified is not None
        return verified._replace(problems=[fake])

    monkeypatch.setattr(disposition, "_verify_before", same_state)
    with pytest.raises(ReleaseRefusedError) as refused:
        _release(batch)
    assert fake in refused.value.problems  # nothing appended since: the snapshot's stands

    def moved(store, journal, run_id):  # type: ignore[no-untyped-def]
        return disposition._Verified(heads=("elsewhere",), problems=[fake])

    monkeypatch.setattr(disposition, "_verify_before", moved)
    with pytest.raises(ReleaseRefusedError) as refused:
        _release(batch)
    assert fake not in refused.value.problems  # verified again under the lock


def test_a_running_batch_is_not_rejected(batch: Batch) -> None:
    from .devs import make_active

    make_active(batch)
    head = batch.site.head()
    with pytest.raises(ReleaseRefusedError, match="has not ended"):
        _release(batch, decision="reject", reason="culture contaminated")
    (refusal,) = batch.site.new_records(head)[-1:]
    assert isinstance(refusal, ReviewActRefused)
    assert [r.code for r in refusal.reasons] == ["run_not_complete"]


def test_a_review_act_on_an_edited_row_is_refused_and_journaled(batch: Batch) -> None:
    from .devs import classify, investigate, runner_id

    dev = runner_id(batch)
    classify(batch, dev)
    conn = raw_connect(batch.path)
    conn.execute("UPDATE deviations SET classification = 'minor'")
    conn.close()
    head = batch.site.head()
    with pytest.raises(ReviewRefusedError, match="not what its site records say"):
        investigate(batch, dev)
    refusals = [r for r in batch.site.new_records(head) if isinstance(r, ReviewActRefused)]
    assert [r.cause for r in refusals] == ["journal_not_verifying"]


def test_verify_rechecks_a_release_against_the_records_of_its_moment(
    batch: Batch, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cellauto.review import disposition

    monkeypatch.setattr(disposition, "release_problems", lambda *a, **k: [])
    monkeypatch.setattr(disposition, "_verify_before", lambda *a, **k: None)
    _release(batch)  # the rules bypassed: an open deviation, no QC result
    problem = _verify(batch)
    assert "released batch" in problem and f"DEV-{batch.run_id[:12]}-01 was open" in problem


def test_verify_rebuilds_the_certificate_of_a_decision(
    batch: Batch, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cellauto.review import disposition

    real = disposition.build_coa

    def flattering(*args, **kwargs):  # type: ignore[no-untyped-def]
        coa = real(*args, **kwargs)
        lines = [line.model_copy(update={"verdict": "pass", "result": "ok"}) for line in coa.lines]
        return coa.model_copy(update={"lines": lines})

    monkeypatch.setattr(disposition, "build_coa", flattering)
    _release(batch, decision="reject", reason="excursion")  # signed, with a false certificate
    problem = _verify(batch)
    assert "certificate of analysis is not what the records said" in problem
    assert "differs in lines" in problem


def test_coa_lines_carry_the_results_analyst_and_test_date(batch: Batch) -> None:
    from cellauto.review.qc import add_result
    from cellauto.review.read import qc_result_bodies

    from .test_qc import TESTED_ON, entry

    act = add_result(batch.store, batch.site.sign_in("lab.chen"), batch.run_id, entry())
    with batch.store.reading() as conn:
        bodies = qc_result_bodies(conn, batch.run_id)
    assert list(bodies) == [act.result_id] and bodies[act.result_id].analyst == "L. Chen"
    outcome = _release(batch, decision="reject", reason="culture excursion, potency unknown")
    lines = {line.test: line for line in outcome.coa.lines}
    assert (lines["viability"].analyst, lines["viability"].tested_on) == ("L. Chen", TESTED_ON)
    assert (lines["endotoxin"].analyst, lines["endotoxin"].tested_on) == (None, None)
    assert _verify(batch) == ""


def test_a_qc_act_on_an_edited_row_is_refused_and_journaled(batch: Batch) -> None:
    from cellauto.review.qc import QcResultInput, add_result, verify_result

    entry = QcResultInput(
        test="viability", sample_id="S-1", method="7-AAD", analyst="L. Chen",
        tested_on="2026-01-20", instrument="FLOW-02", value=91.0, unit="%",
    )  # fmt: skip
    done = add_result(batch.store, batch.site.sign_in("lab.chen"), batch.run_id, entry)
    conn = raw_connect(batch.path)
    conn.execute("UPDATE qc_results SET value = 95.0")
    conn.close()
    head = batch.site.head()
    with pytest.raises(ReviewRefusedError, match="not what its site records say"):
        verify_result(batch.store, batch.site.sign_in("lab.ito"), done.result_id)
    refusals = [r for r in batch.site.new_records(head) if isinstance(r, ReviewActRefused)]
    assert [r.cause for r in refusals] == ["journal_not_verifying"]
