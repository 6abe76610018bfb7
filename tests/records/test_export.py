"""Export: one CSV per record kind, the full record as JSON, byte-identical reruns."""

from __future__ import annotations

import csv
import hashlib
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from cellauto.errors import RunNotFoundError
from cellauto.records import Journal, RecordKind, export_run
from cellauto.records import payloads as rec
from cellauto.records.backend import Location
from tests.records.factory import payload_of


def _write_run(path: Location, make_clock: Callable[..., Any]) -> None:
    with Journal(path) as journal:
        run = journal.begin_run("run-x", make_clock())
        run.append(
            payload_of(
                RecordKind.RUN_STARTED, {"protocol_name": "car-t", "protocol_version": "1.0"}
            )
        )
        run.append(
            payload_of(RecordKind.STATE_CHANGE, {"from_state": "Idle", "to_state": "Running"})
        )
        run.append(payload_of(RecordKind.READING, {"temperature_c": 37.02}))
        run.append(
            rec.Reading(
                instrument="counter",
                method="count",
                arguments={"sample": "s1"},
                step="count",
                value={"viability_pct": math.nan},
            )
        )
        # a stored verdict its own value and spec contradict (min 80 %)
        run.append(payload_of(RecordKind.CHECK_RESULT, {"value": 79.0, "passed": True}))
        run.append(payload_of(RecordKind.RUN_ENDED, {"exit_status": "success"}))
        run.seal()


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_export_writes_csv_per_kind_and_run_json(
    tmp_path: Path, db_location: Location, make_clock: Callable[..., Any], fixed_wall_clock: None
) -> None:
    db = db_location
    _write_run(db, make_clock)
    out = tmp_path / "out" / "nested"
    with Journal(db, create=False) as journal:
        paths = export_run(journal, "run-x", out)
    names = [p.name for p in paths]
    assert names == [
        "run_started.csv",
        "reading.csv",
        "check_result.csv",
        "state_change.csv",
        "run_ended.csv",
        "run.json",
    ]
    with (out / "reading.csv").open(encoding="utf-8") as handle:
        header = next(csv.reader(handle))
    assert header == [
        "seq",
        "kind",
        "process_time",
        "wall_time",
        "arguments",
        "instrument",
        "method",
        "step",
        "value",
        "prev_hash",
        "hash",
    ]
    first, second = _rows(out / "reading.csv")
    assert first["seq"] == "2"
    assert first["process_time"] == "2026-01-01T00:00:01.000000+00:00"
    assert first["wall_time"] == "2026-01-01T00:00:00.002000+00:00"
    assert (first["value"], first["step"]) == ('{"temperature_c":37.02}', "")
    assert (second["arguments"], second["value"]) == ('{"sample":"s1"}', '{"viability_pct":"NaN"}')
    (check,) = _rows(out / "check_result.csv")
    assert (check["value"], check["passed"], len(check["hash"])) == ("79.0", "true", 64)
    # the verdict is recomputed from value and spec, and the disagreement named
    assert check["recomputed_passed"] == "false"
    assert "stored verdict says pass but 79 fails >= 80 %" in check["verdict_problem"]

    document = orjson.loads((out / "run.json").read_bytes())
    assert document["run_id"] == "run-x"
    assert document["chain"]["intact"] is True
    assert document["chain"]["sealed"] is True
    records = document["records"]
    assert [r["seq"] for r in records] == list(range(6))
    assert records[0]["payload"]["protocol_name"] == "car-t"
    assert records[0]["process_time"] == "2026-01-01T00:00:00.000000+00:00"
    # run.json alone is enough to recompute every hash
    keys = ("run_id", "seq", "kind", "process_time_s", "wall_time_ns", "prev_hash", "payload")
    for record in records:
        body = orjson.dumps({k: record[k] for k in keys}, option=orjson.OPT_SORT_KEYS)
        assert hashlib.sha256(body).hexdigest() == record["hash"]


def test_export_is_byte_identical_for_identical_journals(
    tmp_path: Path,
    db_location_factory: Callable[[], Location],
    make_clock: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outputs = []
    for name in ("a", "b"):
        # the same wall clock sequence for both journals
        monkeypatch.setattr(
            "cellauto.records.run_journal._time_ns", iter(range(10**18, 10**18 + 100)).__next__
        )
        where = db_location_factory()
        _write_run(where, make_clock)
        with Journal(where, create=False) as journal:
            paths = export_run(journal, "run-x", tmp_path / f"out-{name}")
        outputs.append({p.name: p.read_bytes() for p in paths})
    assert outputs[0] == outputs[1]
    assert len(outputs[0]) == 6


def test_export_of_unknown_run_writes_nothing(tmp_path: Path, journal: Journal) -> None:
    with pytest.raises(RunNotFoundError):
        export_run(journal, "ghost", tmp_path / "out")
    assert not (tmp_path / "out").exists()
