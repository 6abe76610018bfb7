"""``cellauto verify`` replays the deviation workflow: a record the acts would have
refused, written into the chain by going around them (with the store's own key, so the
chain, its anchors and the rows all agree), is named."""

from __future__ import annotations

import pytest

from cellauto.cli import main
from cellauto.records.refs import SITE_CHAIN, Meaning, RecordRef, SiteRef
from cellauto.records.site_payload_base import SitePayload
from cellauto.records.site_payloads_review import (
    Classification,
    DeviationClassified,
    DeviationClosed,
    DeviationRaised,
    DeviationWithdrawn,
)
from cellauto.review.read import runner_deviations
from cellauto.site.signatures import sign
from tests.site.chain import TERMINAL

from .conftest import Batch
from .devs import (
    CONCLUSION,
    DESCRIPTION,
    IMPACT,
    TITLE,
    classify,
    investigate,
    raise_one,
    runner_id,
)


def _verify(batch: Batch, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["verify", "--db", str(batch.path)])
    out = capsys.readouterr()
    return code, out.out + out.err


def _forge(
    batch: Batch, record: SitePayload, meaning: Meaning | None = None, by: str | None = None
) -> SiteRef:
    """``record`` appended around the acts, signed by ``by`` (default its actor) with
    ``meaning`` when given, in one store transaction."""
    who = None if meaning is None else batch.site.sign_in(by or record.by)
    with batch.store.transaction() as tx:
        ref = tx.append(record)
        if who is not None and meaning is not None:
            target = RecordRef(chain=SITE_CHAIN, seq=ref.seq, hash=ref.hash, kind=record.kind.value)
            sign(tx, who, target, meaning, "forged around the acts")
    return ref


def _close(batch: Batch, dev: str, by: str = "qa.smith", **kwargs: object) -> DeviationClosed:
    return DeviationClosed(
        by=by,
        terminal=TERMINAL,
        deviation_id=dev,
        run_id=batch.run_id,
        conclusion=CONCLUSION,
        **kwargs,  # type: ignore[arg-type]
    )


def _classified(batch: Batch, dev: str, **kwargs: object) -> DeviationClassified:
    return DeviationClassified(
        by="qa.smith",
        terminal=TERMINAL,
        deviation_id=dev,
        run_id=batch.run_id,
        classification=Classification.MAJOR,
        impact_assessment=IMPACT,
        **kwargs,  # type: ignore[arg-type]
    )


def _run_record(batch: Batch, seq: int | None = None) -> RecordRef:
    with batch.store.reading() as conn:
        recorded = runner_deviations(conn, batch.run_id)[0]
        if seq is None:
            seq, digest = recorded.seq, recorded.hash
        else:
            (digest,) = conn.execute(
                "SELECT hash FROM records WHERE run_id = ? AND seq = ?", (batch.run_id, seq)
            ).fetchone()
    return RecordRef(chain="run", run_id=batch.run_id, seq=seq, hash=digest, kind="deviation")


def test_the_acts_verify_intact(batch: Batch, capsys: pytest.CaptureFixture[str]) -> None:
    dev = runner_id(batch)
    classify(batch, dev, "major")
    investigate(batch, dev)
    raise_one(batch)
    code, out = _verify(batch, capsys)
    assert code == 0, out


def test_an_illegal_transition_is_named(batch: Batch, capsys: pytest.CaptureFixture[str]) -> None:
    dev = raise_one(batch).deviation_id
    ref = _forge(batch, _close(batch, dev, capa="CAPA-1"), Meaning.APPROVED)
    code, out = _verify(batch, capsys)
    assert code == 1
    assert f"site record {ref.seq} closes {dev}, which is open, not classified yet" in out


def test_a_broken_capa_rule_is_named(batch: Batch, capsys: pytest.CaptureFixture[str]) -> None:
    dev = runner_id(batch)
    classify(batch, dev, "critical")
    investigate(batch, dev)
    ref = _forge(batch, _close(batch, dev, no_capa_reason="no CAPA for this one"), Meaning.APPROVED)
    code, out = _verify(batch, capsys)
    assert code == 1
    assert f"site record {ref.seq} closes {dev} against the CAPA rule" in out


def test_a_closer_who_investigated_is_named(
    batch: Batch, capsys: pytest.CaptureFixture[str]
) -> None:
    dev = runner_id(batch)
    classify(batch, dev, "major")
    investigate(batch, dev, by="qa.lee")
    ref = _forge(batch, _close(batch, dev, by="qa.lee", capa="CAPA-1"), Meaning.APPROVED)
    code, out = _verify(batch, capsys)
    assert code == 1
    assert f"site record {ref.seq} closes {dev} by qa.lee, who investigated it" in out


def test_a_withdrawn_runner_deviation_is_named(
    batch: Batch, capsys: pytest.CaptureFixture[str]
) -> None:
    dev = runner_id(batch)
    classify(batch, dev, "minor")
    withdrawn = DeviationWithdrawn(
        by="qa.smith",
        terminal=TERMINAL,
        deviation_id=dev,
        run_id=batch.run_id,
        cause="nothing happened at all",
    )
    ref = _forge(batch, withdrawn, Meaning.APPROVED)
    code, out = _verify(batch, capsys)
    assert code == 1
    assert f"site record {ref.seq} withdraws {dev}, which was recorded by the run" in out


def test_a_raised_id_out_of_turn_is_named(batch: Batch, capsys: pytest.CaptureFixture[str]) -> None:
    key = batch.run_id[:12]
    raised = DeviationRaised(
        by="op.ann",
        terminal=TERMINAL,
        deviation_id=f"DEV-{key}-S02",
        run_id=batch.run_id,
        origin="person",
        title=TITLE,
        description=DESCRIPTION,
    )
    ref = _forge(batch, raised, Meaning.PERFORMED)
    code, out = _verify(batch, capsys)
    assert code == 1
    assert (
        f"site record {ref.seq} raises DEV-{key}-S02, but the next deviation raised for run"
        f" {batch.run_id} is DEV-{key}-S01"
    ) in out


def test_a_run_record_of_another_ordinal_is_named(
    batch: Batch, capsys: pytest.CaptureFixture[str]
) -> None:
    dev = runner_id(batch)
    wrong = _run_record(batch, seq=0)  # run_started, not the run's first deviation
    ref = _forge(batch, _classified(batch, dev, run_record=wrong), Meaning.REVIEWED)
    code, out = _verify(batch, capsys)
    assert code == 1
    assert f"site record {ref.seq} names run record #0 of run {batch.run_id} as {dev}" in out
    assert "not that run's deviation record no. 1" in out


@pytest.mark.parametrize("meaning", [None, Meaning.APPROVED])
def test_a_transition_without_its_signature_is_named(
    batch: Batch, capsys: pytest.CaptureFixture[str], meaning: Meaning | None
) -> None:
    dev = runner_id(batch)
    ref = _forge(batch, _classified(batch, dev, run_record=_run_record(batch)), meaning)
    code, out = _verify(batch, capsys)
    assert code == 1
    assert (
        f"site record {ref.seq} (deviation_classified of {dev}) has no signature by qa.smith"
        " of meaning reviewed"
    ) in out


def test_a_signature_by_another_person_does_not_count(
    batch: Batch, capsys: pytest.CaptureFixture[str]
) -> None:
    dev = runner_id(batch)
    record = _classified(batch, dev, run_record=_run_record(batch))
    ref = _forge(batch, record, Meaning.REVIEWED, by="qa.lee")
    code, out = _verify(batch, capsys)
    assert code == 1
    assert f"site record {ref.seq} (deviation_classified of {dev}) has no signature" in out


def test_a_reclassification_naming_a_wrong_previous_is_named(
    batch: Batch, capsys: pytest.CaptureFixture[str]
) -> None:
    dev = runner_id(batch)
    classify(batch, dev, "minor")
    record = _classified(batch, dev, previous=Classification.CRITICAL)
    record = record.model_copy(update={"reason": "it was worse"})
    ref = _forge(batch, record, Meaning.REVIEWED)
    code, out = _verify(batch, capsys)
    assert code == 1
    assert f"site record {ref.seq} reclassifies {dev} from critical, but it was minor" in out
