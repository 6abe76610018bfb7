"""The long measurements table, batch values, their CSV and Parquet files, the
Allotrope cell-counting JSON and ``SimulatedRun.to_dataframe``."""

from __future__ import annotations

import csv
import logging
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from cellauto.errors import BadInputError
from cellauto.records import Journal, Record
from cellauto.records import payloads as rec
from cellauto.records.kinds import RecordKind
from cellauto.review import _optional
from cellauto.review.allotrope import ASM_MANIFEST, cell_counting_document, write_cell_counts
from cellauto.review.measurements import (
    Measurement,
    batch_values,
    batch_values_from_records,
    measurements,
    measurements_from_records,
)
from cellauto.review.measurements_io import (
    measurements_table,
    write_batch_values_csv,
    write_batch_values_parquet,
    write_measurements_csv,
    write_measurements_parquet,
)
from cellauto.review.units import UnknownUnitError, is_timestamp, unit_of
from cellauto.sim import SimulatedRun, simulate
from tests.review.conftest import Batch


@pytest.fixture(scope="module")
def nk() -> SimulatedRun:
    return simulate("protocols/nk_expansion.py", seed=3, patient="typical")


def _records(batch: Batch) -> list[Record]:
    with Journal(batch.path, create=False) as journal:
        return journal.records(batch.run_id)


def _check_rows(rows: list[Measurement], records: list[Record]) -> None:
    assert rows
    start, end = records[0].process_time_s, records[-1].process_time_s
    by_seq = {r.seq: r for r in records}
    for m in rows:
        assert m.unit, m  # every quantity has its unit
        assert m.utc_time.tzinfo is UTC
        assert m.utc_time.timestamp() == pytest.approx(m.process_time_s)
        assert start <= m.process_time_s <= end + 1, m
        payload = by_seq[m.record_seq].payload
        assert isinstance(payload, rec.Reading | rec.InstrumentResponse)
        assert (payload.instrument, payload.method, payload.step) == (
            m.instrument,
            m.method,
            m.step,
        )


def test_every_car_t_field_has_a_unit_time_and_record(batch: Batch) -> None:
    with Journal(batch.path, create=False) as journal:
        rows = measurements(journal, batch.run_id, strict=True)
        again = measurements(journal.read_connection(), batch.run_id, strict=True)
    assert rows == again
    _check_rows(rows, _records(batch))
    seen = {(m.instrument, m.method, m.quantity): m.unit for m in rows}
    assert seen[("counter", "count", "viable_cells_per_ml")] == "cells/mL"
    assert seen[("bioreactor", "process_values", "temperature_c")] == "°C"
    assert seen[("bioreactor", "process_values", "glucose_mmol_per_l")] == "mmol/L"
    assert seen[("bioreactor", "process_values", "ph")] == "pH"
    assert seen[("freezer", "temperatures", "sample_temperature_c")] == "°C"
    assert seen[("freezer", "result", "cooling_rate_through_phase_change_c_per_min")] == "°C/min"
    assert seen[("storage", "conditions", "ln2_level_pct")] == "%"
    assert seen[("cytometer", "immunophenotype", "car_pct")] == "%"
    assert seen[("dry_shipper", "logger_readings", "temperature_c")] == "°C"
    # the excursion is in the table: 39.9 °C at 72 h
    peak = max(
        m.value for m in rows if m.method == "process_values" and m.quantity == "temperature_c"
    )
    assert peak > 39.5


def test_every_nk_field_has_a_unit_time_and_record(nk: SimulatedRun) -> None:
    rows = measurements_from_records(nk.records, strict=True)
    _check_rows(rows, nk.records)
    assert {m.instrument for m in rows} >= {"bioreactor", "counter", "freezer", "storage"}


def test_a_measurement_takes_the_instruments_own_time(batch: Batch) -> None:
    records = {r.seq: r for r in _records(batch)}
    rows = measurements_from_records(records.values())
    value = next(m for m in rows if m.method == "process_values")
    payload = records[value.record_seq].payload
    assert isinstance(payload, rec.Reading)
    assert value.process_time_s == payload.value["process_time_s"]
    count = next(m for m in rows if m.method == "count")
    response = records[count.record_seq].payload
    assert isinstance(response, rec.InstrumentResponse)
    assert count.process_time_s == response.result["counted_at_process_time_s"]
    logged = next(m for m in rows if m.method == "logger_readings")
    assert logged.utc_time.minute % 5 == 0 and logged.utc_time.second == 0  # the item's time


def _reading(value: object, method: str = "read") -> Record:
    payload = rec.Reading(instrument="probe", method=method, arguments={}, step="s", value=value)
    return Record(
        run_id="r" * 32,
        seq=7,
        kind=RecordKind.READING,
        process_time_s=1_767_600_000.0,
        wall_time_ns=0,
        prev_hash="0" * 64,
        hash="1" * 64,
        payload=payload,
    )


def test_an_unknown_field_is_an_error_when_strict_and_logged_otherwise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    record = _reading({"turbidity": 3.0, "temperature_c": 20.0})
    with pytest.raises(UnknownUnitError, match=r"'turbidity'.*units\.py"):
        measurements_from_records([record], strict=True)
    with caplog.at_level(logging.WARNING):
        rows = measurements_from_records([record])
    assert [(m.quantity, m.unit) for m in rows] == [("turbidity", ""), ("temperature_c", "°C")]
    assert "turbidity" in caplog.text


def test_nested_values_identifiers_times_and_a_bare_number() -> None:
    record = _reading(
        {
            "position": {"rack": "A", "box": 1, "slot": 2},
            "segment_index": 3,
            "ok": True,
            "label": "text",
            "probe": {"depth_mm": 4},
            "spectrum_pct": [1, 2],
            "started_process_time_s": 5.0,
        }
    )
    rows = measurements_from_records([record, _reading(37.5, method="temperature_c")])
    assert [(m.quantity, m.value, m.unit) for m in rows] == [
        ("probe.depth_mm", 4.0, "mm"),
        ("spectrum_pct", 1.0, "%"),
        ("spectrum_pct", 2.0, "%"),
        ("temperature_c", 37.5, "°C"),
    ]


def test_the_unit_table() -> None:
    assert unit_of("cooling_rate_c_per_min") == "°C/min"
    assert unit_of("sample_temperature_c") == "°C"
    assert unit_of("perfusion_rate_ml_per_day") == "mL/d"
    assert unit_of("viable_cells_per_ml") == "cells/mL"
    assert unit_of("dilution") == "1"
    assert is_timestamp("counted_at_process_time_s") and not is_timestamp("duration_s")
    with pytest.raises(UnknownUnitError):
        unit_of("colour")


@pytest.mark.parametrize(
    ("field", "unit"),
    [
        ("warming_rate_c_per_h", "°C/h"),
        ("lid_open_rate_c_per_min", "°C/min"),
        ("drift_c_per_day", "°C/d"),
        ("perfusion_ml_per_h", "mL/h"),
        ("perfusion_rate_ml_per_day", "mL/d"),
        ("evaporation_pct_per_h", "%/h"),
        ("death_rate_per_h", "1/h"),
        ("dose_cells_per_kg", "cells/kg"),
        ("endotoxin_eu_per_kg", "EU/kg"),
        ("endotoxin_eu_per_ml", "EU/mL"),
        ("glucose_mmol_per_l", "mmol/L"),
        ("il2_mg_per_l", "mg/L"),
        ("viable_cells_per_ml", "cells/mL"),
        ("rate_per_step", None),  # not a unit after _per_: no compound, and no unit at all
        ("duration_h", "h"),
        ("weight_kg", "kg"),
    ],
)
def test_rates_have_compound_units(field: str, unit: str | None) -> None:
    """A rate is never given the unit of its last suffix alone ("h", "kg")."""
    if unit is None:
        with pytest.raises(UnknownUnitError):
            unit_of(field)
    else:
        assert unit_of(field) == unit


def test_batch_values_are_typed(batch: Batch) -> None:
    with Journal(batch.path, create=False) as journal:
        rows = batch_values(journal, batch.run_id)
    named = {r.name: r for r in rows}
    assert isinstance(named["fold expansion"].value, float)
    assert named["dose"].unit == "CAR+ viable T cells"
    assert named["seeded viable cells"].utc_time.tzinfo is UTC
    record = _reading(None)
    text = rec.BatchValue(step=None, name="lot list", value=["L1", {"b": 1}], unit="")
    flag = rec.BatchValue(step=None, name="flag", value=True, unit="")
    typed = batch_values_from_records(
        [record.model_copy(update={"payload": p}) for p in (text, flag)]
    )
    assert [r.value for r in typed] == ['["L1",{"b":1}]', True]


def test_csv_files(batch: Batch, tmp_path: Path) -> None:
    with Journal(batch.path, create=False) as journal:
        rows = measurements(journal, batch.run_id)
        values = batch_values(journal, batch.run_id)
    write_measurements_csv(rows, tmp_path / "m.csv")
    write_batch_values_csv(values, tmp_path / "b.csv")
    with (tmp_path / "m.csv").open(encoding="utf-8") as f:
        read = list(csv.DictReader(f))
    assert list(read[0]) == list(Measurement._fields)
    assert len(read) == len(rows)
    for line, m in zip(read, rows, strict=True):
        assert float(line["value"]) == m.value
        assert datetime.fromisoformat(line["utc_time"]) == m.utc_time
        assert (line["unit"], int(line["record_seq"])) == (m.unit, m.record_seq)
    with (tmp_path / "b.csv").open(encoding="utf-8") as f:
        read_values = list(csv.DictReader(f))
    assert [v["name"] for v in read_values] == [v.name for v in values]


def test_parquet_round_trip(batch: Batch, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    pa = pytest.importorskip("pyarrow")
    with Journal(batch.path, create=False) as journal:
        rows = measurements(journal, batch.run_id)
        values = batch_values(journal, batch.run_id)
    write_measurements_parquet(rows, tmp_path / "m.parquet", batch.run_id)
    write_batch_values_parquet(values, tmp_path / "b.parquet", batch.run_id)
    table = pq.read_table(tmp_path / "m.parquet")
    schema = table.schema
    assert schema.field("utc_time").type == pa.timestamp("us", tz="UTC")
    assert schema.field("value").type == pa.float64()
    assert schema.field("record_seq").type == pa.int64()
    assert schema.metadata[b"run_id"] == batch.run_id.encode()
    assert schema.field("process_time_s").metadata[b"unit"] == b"s"
    units = orjson.loads(schema.field("value").metadata[b"units"])
    assert units["temperature_c"] == "°C" and units["viable_cells_per_ml"] == "cells/mL"
    back = table.to_pylist()
    assert len(back) == len(rows)
    for got, m in zip(back, rows, strict=True):
        assert got["utc_time"] == m.utc_time
        assert (got["quantity"], got["value"], got["unit"], got["record_seq"]) == (
            m.quantity,
            m.value,
            m.unit,
            m.record_seq,
        )
    bv = pq.read_table(tmp_path / "b.parquet").to_pylist()
    assert [(r["name"], r["value"]) for r in bv] == [(v.name, v.value) for v in values]
    assert measurements_table([], "x").num_rows == 0


def test_allotrope_cell_counts(batch: Batch, tmp_path: Path) -> None:
    path = write_cell_counts(Journal(batch.path, create=False), batch.run_id, tmp_path / "c.json")
    document = orjson.loads(path.read_bytes())
    assert document["$asm.manifest"] == ASM_MANIFEST
    aggregate = document["cell counting aggregate document"]
    assert aggregate["device system document"]["device identifier"] == "counter"
    records = _records(batch)
    counts = [
        r
        for r in records
        if isinstance(r.payload, rec.InstrumentResponse)
        and r.payload.method == "count"
        and r.payload.ok
    ]
    docs = aggregate["cell counting document"]
    assert len(docs) == len(counts) > 0
    for doc, record in zip(docs, counts, strict=True):
        assert isinstance(record.payload, rec.InstrumentResponse)
        result = record.payload.result
        assert doc["analyst"] == result["operator"]
        (measurement,) = doc["measurement aggregate document"]["measurement document"]
        assert measurement["measurement identifier"] == f"{batch.run_id}-{record.seq}"
        assert measurement["measurement time"].endswith("Z")
        assert measurement["sample document"]["sample identifier"] == result["sample_id"]
        (processed,) = measurement["processed data aggregate document"]["processed data document"]
        assert processed["viability (cell counter)"] == {
            "value": result["viability_pct"],
            "unit": "%",
        }
        density = processed["viable cell density (cell counter)"]
        assert density["unit"] == "(10^6 cells)/mL"
        assert density["value"] == pytest.approx(result["viable_cells_per_ml"] / 1e6)
        device = measurement["device control aggregate document"]["device control document"][0]
        assert device["device identifier"] == "counter"
    with pytest.raises(ValueError, match="run_started"):
        cell_counting_document(counts)


def test_to_dataframe(nk: SimulatedRun) -> None:
    pytest.importorskip("pandas")
    frame = nk.to_dataframe()
    rows = measurements_from_records(nk.records)
    assert list(frame.columns) == list(Measurement._fields)
    assert len(frame) == len(rows)
    assert str(frame["utc_time"].dt.tz) == "UTC"
    assert frame["value"].dtype.kind == "f"
    assert frame["value"].tolist() == [m.value for m in rows]


def test_without_the_analysis_extra_the_export_names_it(
    monkeypatch: pytest.MonkeyPatch, nk: SimulatedRun, tmp_path: Path
) -> None:
    def missing(name: str) -> object:
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(_optional, "import_module", missing)
    with pytest.raises(BadInputError, match=r"cellauto\[analysis\]"):
        nk.to_dataframe()
    with pytest.raises(BadInputError, match="pyarrow"):
        write_measurements_parquet([], tmp_path / "m.parquet", "x")
