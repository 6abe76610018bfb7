"""The review records' seam: derived ids, projections written with their records,
rows read back merged with the runner's deviations, and an edited row refused."""

from __future__ import annotations

import pytest

from cellauto.errors import BadInputError, JournalError
from cellauto.records import Journal
from cellauto.records.refs import RecordRef
from cellauto.records.site_payloads_review import Classification, DeviationClassified
from cellauto.records.verify import verify_journal
from cellauto.review.ids import (
    parse_deviation_id,
    qc_result_id,
    run_for_key,
    runner_deviation_id,
    site_deviation_id,
)
from cellauto.review.read import (
    confirm_run_review,
    read_deviation,
    read_deviations,
    runner_deviations,
)
from cellauto.site.replay import replay_problem
from tests.raw_sql import raw_connect
from tests.site.chain import TERMINAL

from .conftest import Batch

RUN = "3f9a1c2e7b10" + "0" * 20


def test_ids_are_derived_and_parsed() -> None:
    assert runner_deviation_id(RUN, 1) == "DEV-3f9a1c2e7b10-01"
    assert site_deviation_id(RUN, 12) == "DEV-3f9a1c2e7b10-S12"
    assert qc_result_id(RUN, "identity (CAR+)", 1) == "QC-3f9a1c2e7b10-identity-car-01"
    assert parse_deviation_id("DEV-3f9a1c2e7b10-S12") == ("3f9a1c2e7b10", "site", 12)
    with pytest.raises(BadInputError, match="not a deviation id"):
        parse_deviation_id("DEV-42")


def test_the_runners_deviation_is_open_with_its_id(batch: Batch) -> None:
    with batch.store.reading() as conn:
        recorded = runner_deviations(conn, batch.run_id)
        rows = read_deviations(conn, run_id=batch.run_id, open_only=True)
        assert run_for_key(conn, batch.run_id[:12]) == batch.run_id
    assert [r.deviation_id for r in recorded] == [f"DEV-{batch.run_id[:12]}-01"]
    assert [(r.deviation_id, r.status, r.origin) for r in rows] == [
        (recorded[0].deviation_id, "open", "runner")
    ]


def _classify(batch: Batch) -> str:
    with batch.store.reading() as conn:
        recorded = runner_deviations(conn, batch.run_id)[0]
    record = DeviationClassified(
        by="qa.smith",
        terminal=TERMINAL,
        deviation_id=recorded.deviation_id,
        run_id=batch.run_id,
        classification=Classification.MAJOR,
        impact_assessment="culture above 38 °C for 3 h; potency at risk",
        run_record=RecordRef(
            chain="run", run_id=batch.run_id, seq=recorded.seq, hash=recorded.hash, kind="deviation"
        ),
    )
    with batch.store.transaction() as tx:
        tx.append(record)
    return recorded.deviation_id


def test_a_transition_sets_the_row_and_an_edit_is_refused(batch: Batch) -> None:
    deviation_id = _classify(batch)
    with batch.store.reading() as conn:
        row = read_deviation(conn, deviation_id)
    assert row is not None and (row.status, row.classification) == ("classified", "major")
    edit = raw_connect(batch.path)
    edit.execute("UPDATE deviations SET status = 'closed' WHERE deviation_id = ?", (deviation_id,))
    edit.close()
    with batch.store.reading() as conn, pytest.raises(JournalError, match="deviations row"):
        confirm_run_review(conn, batch.run_id)
    with Journal(batch.path, create=False) as journal:
        report = verify_journal(journal, site_replay=replay_problem)
    assert not report.intact
    assert "deviations table edited" in str(report)
