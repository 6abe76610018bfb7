"""Trends across batches: metrics per batch, control limits, the out-of-trend rules, and
trends.csv / trends.html."""

from __future__ import annotations

import csv
import dataclasses
import re
from contextlib import closing
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest

from cellauto.errors import BadInputError, RunNotFoundError
from cellauto.records import Journal
from cellauto.records import payloads as rec
from cellauto.review.trends import (
    METRICS,
    BatchMetrics,
    batch_metrics,
    control_limits,
    out_of_trend,
    select_batches,
    trend,
    trend_table,
    trend_tables,
)
from cellauto.review.trends_out import (
    CSV_COLUMNS,
    trends_by_protocol,
    write_trends_csv,
    write_trends_html,
)
from tests.raw_sql import raw_connect

from .conftest import BATCHES, EXCURSION_AT

NAME = "car-t-autologous"
WHEN = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def test_a_batchs_metrics_come_from_its_records(trend_db: tuple[Path, list[str]]) -> None:
    path, run_ids = trend_db
    with Journal(path, create=False) as journal:
        clean = batch_metrics(journal, run_ids[0])
        excursion = batch_metrics(journal.read_connection(), run_ids[EXCURSION_AT])
        records = journal.records(run_ids[0])
        with pytest.raises(RunNotFoundError):
            batch_metrics(journal, "f" * 32)
    values = {p.name: p.value for r in records if isinstance(p := r.payload, rec.BatchValue)}
    checks = {p.check: p.value for r in records if isinstance(p := r.payload, rec.CheckResult)}
    assert clean.fold_expansion == values["fold expansion"]
    assert clean.dose == values["dose"] and clean.dose_unit == "CAR+ viable T cells"
    assert clean.viability_at_release_pct == checks["viability at release"]
    assert clean.duration_h == pytest.approx(
        (records[-1].process_time_s - records[0].process_time_s) / 3600
    )
    assert clean.batch == "W123426000042"
    assert (clean.exit_status, clean.deviations, clean.disposition) == ("complete", 0, None)
    assert clean.right_first_time
    assert excursion.deviations == 1 and not excursion.right_first_time


def _dispose(path: Path, run_id: str, decision: str) -> None:
    with closing(raw_connect(path)) as conn:
        conn.execute(
            "INSERT INTO dispositions VALUES (?, ?, 0, 'qa.smith', '', 1, 'x')", (run_id, decision)
        )


def test_right_first_time_needs_a_release_when_disposed(trend_db: tuple[Path, list[str]]) -> None:
    path, run_ids = trend_db
    _dispose(path, run_ids[0], "rejected")
    _dispose(path, run_ids[1], "released")
    with Journal(path, create=False) as journal:
        rejected, released = (batch_metrics(journal, r) for r in run_ids[:2])
    assert (rejected.disposition, rejected.right_first_time) == ("rejected", False)
    assert (released.disposition, released.right_first_time) == ("released", True)


def test_the_table_is_in_start_order_per_protocol(trend_db: tuple[Path, list[str]]) -> None:
    path, run_ids = trend_db
    with Journal(path, create=False) as journal:
        tables = trend_tables(journal)
        only = trend_table(journal, NAME)
        assert trend_table(journal, "no such protocol") == []
    assert list(tables) == [NAME, "nk-expansion"]
    assert [b.run_id for b in tables[NAME]] == run_ids == [b.run_id for b in only]
    starts = [b.started for b in only]
    assert starts == sorted(starts) and starts[0].tzinfo is UTC
    (nk,) = tables["nk-expansion"]
    assert nk.dose is not None and nk.fold_expansion is None  # NK records no fold expansion


def test_control_limits_are_mean_plus_minus_three_sigma_over_the_baseline() -> None:
    limits = control_limits([1.0, 2.0, 3.0, None, 100.0], baseline=3)
    assert limits is not None
    assert (limits.mean, limits.sigma, limits.baseline) == (2.0, 1.0, 3)
    assert (limits.lower, limits.upper) == (-1.0, 5.0)
    everything = control_limits([1.0, 2.0, 3.0, None, 100.0])
    assert everything is not None and everything.baseline == 4
    assert control_limits([5.0, None]) is None  # sigma needs two values
    with pytest.raises(BadInputError, match="at least 2"):
        control_limits([1.0, 2.0], baseline=1)


def test_a_value_outside_the_limits_is_out_of_trend() -> None:
    values: list[float | None] = [10.0, 11.0, 9.0, 10.0, 30.0, -20.0]
    limits = control_limits(values, baseline=4)
    reasons = out_of_trend(values, limits)
    assert reasons[:4] == [None] * 4
    assert reasons[4] is not None and "above the upper control limit" in reasons[4]
    assert reasons[5] is not None and "below the lower control limit" in reasons[5]


def test_seven_in_a_row_on_one_side_is_nelson_rule_2() -> None:
    base = [10.0, 8.0, 12.0, 11.0, 9.0]  # mean 10, the last below it
    limits = control_limits(base)
    six = [*base, 10.5, 10.5, 10.5, 10.5, 10.5, 10.5, 9.5]
    assert out_of_trend(six, limits) == [None] * len(six)
    seven = [*base, 10.5, 10.5, 10.5, 10.5, 10.5, 10.5, 10.5, 10.5]
    reasons = out_of_trend(seven, limits)
    # index 5 starts the run above the mean: the 7th is index 11
    assert [i for i, r in enumerate(reasons) if r] == [11, 12]
    assert reasons[11] == "7 consecutive values above the mean (Nelson rule 2)"
    assert reasons[12] == "8 consecutive values above the mean (Nelson rule 2)"
    # a value on the mean ends the run; a missing value neither ends nor extends it
    broken = [*base, 10.5, 10.5, 10.5, 10.0, 10.5, 10.5, 10.5]
    assert not any(out_of_trend(broken, limits))
    gaps = [9.0, 9.5, None, 9.5, 9.5, 9.0, 9.5, None, 9.5]
    below = out_of_trend(gaps, limits)
    assert [i for i, r in enumerate(below) if r] == [8]
    assert below[8] == "7 consecutive values below the mean (Nelson rule 2)"
    assert not any(out_of_trend(seven, limits, run_length=9))
    # a count of bad events: only a rise is a signal
    assert not any(out_of_trend(gaps, limits, upper_only=True))
    assert not any(out_of_trend([*base, -50.0], limits, upper_only=True))
    assert out_of_trend([*base, 50.0], limits, upper_only=True)[-1]
    assert any(out_of_trend(seven, limits, upper_only=True))


def test_no_limits_no_flags() -> None:
    assert out_of_trend([1.0, 50.0], None) == [None, None]


def _metrics(value: float, i: int) -> BatchMetrics:
    return BatchMetrics(
        run_id=f"{i:032x}",
        protocol="p",
        protocol_version="1",
        started=datetime(2026, 1, 1 + i, tzinfo=UTC),
        batch=None,
        exit_status="complete",
        fold_expansion=value,
        viability_at_release_pct=None,
        dose=1e8,
        dose_unit="cells",
        duration_h=24.0,
        deviations=0,
        disposition=None,
        right_first_time=True,
    )


def test_select_batches_keeps_simulated_apart() -> None:
    real = [dataclasses.replace(_metrics(30.0, i), simulated=False) for i in range(2)]
    sim = [dataclasses.replace(_metrics(31.0, i + 2), simulated=True) for i in range(3)]
    chosen = select_batches([*sim, *real])
    assert (chosen.batches, chosen.simulated_left_out, chosen.basis) == (real, 3, "real")
    assert "3 simulated batches left out" in chosen.describe()
    only = select_batches(sim)
    assert (only.batches, only.basis) == (sim, "simulated")
    assert "no real batch" in only.describe()
    mixed = select_batches([*sim, *real], include_simulated=True)
    assert (mixed.batches, mixed.simulated_left_out, mixed.basis) == ([*sim, *real], 0, "mixed")


def test_a_trend_over_synthetic_batches() -> None:
    batches = [_metrics(v, i) for i, v in enumerate([30.0, 32.0, 31.0, 29.0, 60.0])]
    fold = trend(batches, METRICS[0], baseline=4)
    assert fold.limits is not None and fold.limits.baseline == 4
    assert [p.batch.run_id for p in fold.flagged] == [batches[4].run_id]
    viability = trend(batches, METRICS[1])
    assert viability.limits is None and viability.flagged == []
    dose = trend(batches, METRICS[2])
    assert dose.unit == "cells"


class _Sections(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.svgs = 0
        self.oot_cells: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id"):
            self.ids.append(str(found["id"]))
        self.svgs += tag == "svg"
        self.scripts += tag == "script"
        if tag == "td" and "oot" in str(found.get("class", "")):
            self.oot_cells.append(str(found.get("title")))


def test_trends_csv_and_html(trend_db: tuple[Path, list[str]], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path, run_ids = trend_db
    with Journal(path, create=False) as journal:
        tables = trend_tables(journal)
    trends = trends_by_protocol(tables)
    deviations = next(t for t in trends[NAME] if t.metric.key == "deviations")
    assert [p.batch.run_id for p in deviations.flagged] == [run_ids[EXCURSION_AT]]

    csv_path = write_trends_csv(trends, tmp_path / "trends.csv")
    with csv_path.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == (BATCHES + 1) * len(METRICS)
    flagged = [r for r in rows if r["out_of_trend"]]
    assert [(r["run_id"], r["metric"]) for r in flagged] == [(run_ids[EXCURSION_AT], "deviations")]
    fold = [r for r in rows if r["protocol"] == NAME and r["metric"] == "fold_expansion"]
    assert [r["run_id"] for r in fold] == run_ids
    assert float(fold[0]["upper_limit"]) > float(fold[0]["mean"]) > float(fold[0]["lower_limit"])

    html_path = write_trends_html(trends, tmp_path / "trends.html", generated_at=WHEN)
    text = html_path.read_text(encoding="utf-8")
    parser = _Sections()
    parser.feed(text)
    assert parser.scripts == 0 and not re.search(r'(src|href)="(https?:|file:|//)', text)
    assert {"protocol-0", "protocol-1"} <= set(parser.ids)
    assert {m.key for m in METRICS} <= set(parser.ids)
    assert parser.svgs == 2 * len(METRICS)  # one plot per metric and protocol
    assert len(parser.oot_cells) == 1 and "upper control limit" in parser.oot_cells[0]
    assert "right first time: <strong>11 of 12 (92 %)</strong>" in text
    assert "Nelson rule 2" in text
    car_t = text[text.index('id="protocol-0"') : text.index('id="protocol-1"')]
    assert len(re.findall(r"UCL \(mean \+ 3 sigma\)", car_t)) == len(METRICS)  # limits drawn
    assert car_t.count(">out of trend<") == 1  # the flagged point's marker, in its legend

    again = write_trends_html(trends, tmp_path / "again.html", generated_at=WHEN)
    assert again.read_bytes() == html_path.read_bytes()  # byte-stable
