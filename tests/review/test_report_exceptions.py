"""Review by exception and the appendix: borderline values, the freezer profile drawn,
a journal that does not verify listed first, collapsed readings keeping their anchors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cellauto.records import Journal
from cellauto.records.spec import Spec
from cellauto.review.report.batch_record import build_batch_record
from cellauto.review.report.exceptions import borderline
from cellauto.review.report.html import render_html
from cellauto.review.report.series import profile_curve
from cellauto.review.report.steps import appendix_rows
from tests.raw_sql import raw_connect

from .conftest import Batch

AT = datetime(2026, 2, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "spec", "expected"),
    [
        (37.0, Spec(min=36, max=38, unit="°C"), False),
        (37.95, Spec(min=36, max=38, unit="°C"), True),  # 5 % of the 2 °C range is 0.1 °C
        (36.05, Spec(min=36, max=38, unit="°C"), True),
        (38.5, Spec(min=36, max=38, unit="°C"), False),  # a failure, not borderline
        (83.0, Spec(min=80, unit="%"), True),  # 5 % of 80 is 4
        (85.0, Spec(min=80, unit="%"), False),
        (1.0, Spec(min=1), False),  # a flag: no unit, never borderline
        (0.0, Spec(max=0, unit="°C"), False),  # a zero limit has no margin
    ],
)
def test_borderline(value: float, spec: Spec, expected: bool) -> None:
    assert borderline(value, spec) is expected


def test_profile_curve_follows_ramps_and_holds() -> None:
    profile = {
        "start_temperature_c": 4.0,
        "segments": [
            {"kind": "ramp", "end_temperature_c": -10.0, "rate_c_per_min": -1.0},
            {"kind": "hold", "duration_min": 5.0},
            {"kind": "ramp", "end_temperature_c": -90.0, "rate_c_per_min": -10.0},
        ],
    }
    times, values = profile_curve(profile, 1000.0)
    assert [(t - 1000.0) / 60 for t in times] == [0.0, 14.0, 19.0, 27.0]
    assert values == [4.0, -10.0, -10.0, -90.0]
    assert profile_curve({"segments": []}, 0.0) == ([], [])


def test_a_journal_that_does_not_verify_comes_first(batch: Batch) -> None:
    edit = raw_connect(batch.path)
    (seq,) = edit.execute(
        "SELECT seq FROM records WHERE run_id = ? AND kind = 'check_result' ORDER BY seq LIMIT 1",
        (batch.run_id,),
    ).fetchone()
    edit.execute(
        "UPDATE records SET body = replace(body, '\"hold\"', '\"continue\"')"
        " WHERE run_id = ? AND seq = ?",
        (batch.run_id, seq),
    )
    edit.close()
    with Journal(batch.path, create=False) as journal:
        record = build_batch_record(journal, batch.run_id, generated_at=AT)
    first = record.review[0]
    assert (first.category, first.severity, first.anchor) == (
        "journal",
        "blocks release",
        "verification",
    )
    assert f"record {seq}" in first.detail
    assert not record.verification.run_intact
    html = render_html(record, [])
    assert "BROKEN" in html[html.index('<section id="verification">') :]


def test_collapsed_readings_keep_the_anchors_review_items_use(batch: Batch) -> None:
    with Journal(batch.path, create=False) as journal:
        records = journal.records(batch.run_id)
    readings = [r for r in records if r.kind.value == "reading"]
    kept = f"r{readings[40].seq}"
    rows = appendix_rows(records, shown=set(), keep={kept})
    collapsed = [row for row in rows if "readings of" in row.text]
    assert collapsed and len(rows) < len(records) / 2
    holding = [row for row in collapsed if kept in row.anchors]
    assert len(holding) == 1 and holding[0].anchors[0] != kept
    anchors = [a for row in rows for a in row.anchors]
    assert len(anchors) == len(set(anchors))
