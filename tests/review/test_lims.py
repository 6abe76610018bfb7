"""LIMS import: a signed, versioned schema; the whole file refused naming row and
column; rows of other batches ignored and counted; OOS rows open deviations in the
import's commit; the same file twice refused; a dry run writes nothing."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import orjson
import pytest

from cellauto.errors import BadInputError, PermissionRefusedError, ReviewRefusedError
from cellauto.records import Journal
from cellauto.records.lims_schema import LimsSchema
from cellauto.records.site_payloads import Signature
from cellauto.records.site_payloads_review import (
    DeviationRaised,
    LimsSchemaDefined,
    QcResultsImported,
    ReviewActRefused,
)
from cellauto.records.verify import verify_journal
from cellauto.review import lims_parse
from cellauto.review.lims import check_import, define_schema, import_results, schema_of
from cellauto.review.read import lims_schema, read_qc_results
from cellauto.sim.faults import QcFault
from cellauto.sim.qc import (
    SIM_LIMS_JSON_SCHEMA,
    SIM_LIMS_SCHEMA,
    simulated_results,
    write_lims_export,
)
from cellauto.site.replay import replay_problem
from tests.raw_sql import journal_snapshot
from tests.site.chain import TERMINAL

from .conftest import Batch

COLUMNS = list(SIM_LIMS_SCHEMA.columns.model_dump().values())


def rows_of(batch: Batch, *faults: QcFault) -> list[dict[str, str]]:
    with Journal(batch.path, create=False) as journal:
        records = journal.records(batch.run_id)
    return simulated_results(records, seed=1, faults=faults)


def write(
    path: Path, rows: list[dict[str, str]], *, delimiter: str = ",", bom: bool = False
) -> Path:
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=COLUMNS, delimiter=delimiter, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + out.getvalue().encode())
    return path


@pytest.fixture
def schema(batch: Batch) -> Batch:
    define_schema(batch.store, batch.site.sign_in("qa.smith"), "sim-lims", SIM_LIMS_SCHEMA)
    return batch


def refusals(batch: Batch, since: int) -> list[ReviewActRefused]:
    return [r for r in batch.site.new_records(since) if isinstance(r, ReviewActRefused)]


def test_schema_versions_are_signed_by_qa(batch: Batch) -> None:
    qa = batch.site.sign_in("qa.smith")
    first = define_schema(batch.store, qa, "sim-lims", SIM_LIMS_SCHEMA)
    second = define_schema(batch.store, qa, "sim-lims", SIM_LIMS_JSON_SCHEMA, reason="JSON now")
    assert (first.version, second.version) == (1, 2)
    records = batch.site.new_records(first.ref.seq - 1)
    assert isinstance(records[0], LimsSchemaDefined)
    assert isinstance(records[1], Signature) and records[1].meaning == "approved"
    with batch.store.reading() as conn:
        found = lims_schema(conn, "sim-lims")
    assert found is not None and found[0] == 2 and found[1].format == "json"
    head = batch.site.head()
    with pytest.raises(PermissionRefusedError, match=r"qc\.schema"):
        define_schema(batch.store, batch.site.sign_in("lab.chen"), "sim-lims", SIM_LIMS_SCHEMA)
    assert [r.cause for r in refusals(batch, head)] == ["permission"]


def test_schema_define_validation() -> None:
    good = SIM_LIMS_SCHEMA.model_dump(mode="json")
    assert schema_of(orjson.dumps(good), source="map.json") == SIM_LIMS_SCHEMA
    with pytest.raises(BadInputError, match="surprise: Extra inputs"):
        schema_of(orjson.dumps({**good, "surprise": 1}), source="map.json")
    with pytest.raises(BadInputError, match="strptime"):
        schema_of(orjson.dumps({**good, "date_format": "YYYY-MM-DD"}), source="map.json")
    with pytest.raises(BadInputError, match="not JSON"):
        schema_of(b"{", source="map.json")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda g: {**g, "columns": {k: v for k, v in g["columns"].items() if k != "status"}},
            r"columns\.status: Field required",
        ),
        (lambda g: {**g, "columns": {**g["columns"], "status": None}}, r"columns\.status"),
        (lambda g: {**g, "accepted_status": []}, "accepted_status names no status"),
        (lambda g: {**g, "accepted_status": [" "]}, "accepted_status names no status"),
    ],
)
def test_a_schema_must_state_the_lims_authorisation(change: Any, message: str) -> None:
    """The LIMS's authorisation is the second person's check of an imported result: a
    schema without a status column or an accepted status cannot be declared."""
    good = SIM_LIMS_SCHEMA.model_dump(mode="json")
    with pytest.raises(BadInputError, match=message):
        schema_of(orjson.dumps(change(good)), source="map.json")


def test_a_row_without_its_status_refuses_the_file(schema: Batch, tmp_path: Path) -> None:
    batch = schema
    path = write(tmp_path / "results.csv", _bad(rows_of(batch), "STATUS", ""))
    head = batch.site.head()
    with pytest.raises(
        ReviewRefusedError, match="row 2 column STATUS: status '' is not authorised"
    ):
        import_results(
            batch.store, batch.site.sign_in("lab.chen"), batch.run_id, path, schema_name="sim-lims"
        )
    assert [r.cause for r in refusals(batch, head)] == ["lims_format"]


def test_import_records_one_batch_and_ignores_others(schema: Batch, tmp_path: Path) -> None:
    batch = schema
    rows = rows_of(batch)
    other = {**rows[0], "COI": "W123426ZZZ999", "DIN": "W12342699999901"}
    path = write(tmp_path / "results.csv", [other, *rows], bom=True)
    outcome = import_results(
        batch.store, batch.site.sign_in("lab.chen"), batch.run_id, path, schema_name="sim-lims"
    )
    assert outcome.ignored_rows == 1 and outcome.deviations == []
    assert len(outcome.results) == 8 and set(outcome.verdicts) == {"pass"}
    assert outcome.results[0].lims_row == 3  # header row 1, another batch's row 2
    records = batch.site.new_records(outcome.ref.seq - 1)  # type: ignore[union-attr]
    assert isinstance(records[0], QcResultsImported) and records[0].ignored_rows == 1
    assert isinstance(records[1], Signature) and records[1].meaning == "performed"
    with batch.store.reading() as conn:
        results = read_qc_results(conn, batch.run_id)
    assert {r.source for r in results} == {"lims"} and len(results) == 8

    head = batch.site.head()
    with pytest.raises(ReviewRefusedError, match="already imported"):
        import_results(
            batch.store, batch.site.sign_in("lab.ito"), batch.run_id, path, schema_name="sim-lims"
        )
    assert [r.cause for r in refusals(batch, head)] == ["already_imported"]


def test_oos_rows_open_deviations_in_the_same_commit(schema: Batch, tmp_path: Path) -> None:
    batch = schema
    rows = rows_of(batch, QcFault(test="endotoxin", effect="fail", value=9.0))
    path = write(tmp_path / "results.csv", rows)
    outcome = import_results(
        batch.store, batch.site.sign_in("lab.chen"), batch.run_id, path, schema_name="sim-lims"
    )
    assert outcome.deviations == [f"DEV-{batch.run_id[:12]}-S01"]
    records = batch.site.new_records(outcome.ref.seq - 1)  # type: ignore[union-attr]
    assert [type(r).__name__ for r in records] == [
        "QcResultsImported",
        "Signature",
        "DeviationRaised",
        "Signature",
    ]
    raised = records[2]
    assert isinstance(raised, DeviationRaised) and raised.title.startswith("OOS: endotoxin")
    assert raised.qc_result == outcome.results[1].result_id


def test_dry_run_writes_nothing(schema: Batch, tmp_path: Path) -> None:
    batch = schema
    path = write(tmp_path / "results.csv", rows_of(batch))
    before = journal_snapshot(batch.path)
    outcome = check_import(batch.store, batch.run_id, path, schema_name="sim-lims")
    assert outcome.ref is None and len(outcome.results) == 8
    with pytest.raises(ReviewRefusedError, match="no LIMS schema"):
        check_import(batch.store, batch.run_id, path, schema_name="nope")
    assert journal_snapshot(batch.path) == before  # a refused dry run is not journaled either


def _bad(rows: list[dict[str, str]], column: str, value: str, row: int = 0) -> list[dict[str, str]]:
    changed = [dict(r) for r in rows]
    changed[row][column] = value
    return changed


@pytest.mark.parametrize(
    ("edit", "cause", "message"),
    [
        (lambda r: _bad(r, "ANALYSIS", "XYZ"), "lims_format", "row 2 column ANALYSIS: test code"),
        (lambda r: _bad(r, "TESTED_ON", "2026-01-20"), "lims_format", "row 2 column TESTED_ON"),
        (
            lambda r: _bad(r, "RESULT", "maybe"),
            "lims_format",
            "row 2 column RESULT: 'maybe' is not",
        ),
        (
            lambda r: _bad(r, "RESULT", "<0.5", 1),
            "lims_format",
            "row 3 column RESULT: '<0.5' is not a number",
        ),
        (lambda r: _bad(r, "STATUS", "IN REVIEW"), "lims_format", "row 2 column STATUS"),
        (lambda r: _bad(r, "UNITS", "EU/L", 1), "unit", "row 3 column UNITS"),
        (lambda r: _bad(r, "DIN", "W12342600004299"), "sample_identity", "row 2 column DIN"),
        (lambda r: [*r, r[0]], "lims_format", "sterility given twice"),
        (lambda r: [{k: v for k, v in x.items()} for x in r][:0], "no_rows_for_batch", "no row of"),
    ],
)
def test_bad_file(schema: Batch, tmp_path: Path, edit: Any, cause: str, message: str) -> None:
    batch = schema
    path = write(tmp_path / "results.csv", edit(rows_of(batch)))
    head = batch.site.head()
    with pytest.raises(ReviewRefusedError, match=message.replace("(", r"\(").replace("+", r"\+")):
        import_results(
            batch.store, batch.site.sign_in("lab.chen"), batch.run_id, path, schema_name="sim-lims"
        )
    assert [r.cause for r in refusals(batch, head)] == [cause]
    with batch.store.reading() as conn:
        assert read_qc_results(conn, batch.run_id) == []


def test_missing_column_and_wrong_delimiter(schema: Batch, tmp_path: Path) -> None:
    batch = schema
    chen = batch.site.sign_in("lab.chen")
    path = write(tmp_path / "semi.csv", rows_of(batch), delimiter=";")
    with pytest.raises(ReviewRefusedError, match="row 1 column SAMPLE_ID: no such column"):
        import_results(batch.store, chen, batch.run_id, path, schema_name="sim-lims")
    path.write_bytes(b"\xff\xfe garbage")
    with pytest.raises(ReviewRefusedError, match="is not utf-8 text"):
        import_results(batch.store, chen, batch.run_id, path, schema_name="sim-lims")


def test_json_export_and_rows_path(schema: Batch, tmp_path: Path) -> None:
    batch = schema
    qa, chen = batch.site.sign_in("qa.smith"), batch.site.sign_in("lab.chen")
    define_schema(batch.store, qa, "sim-json", SIM_LIMS_JSON_SCHEMA)
    path = write_lims_export(rows_of(batch), tmp_path / "results.json", format="json")
    wrong = SIM_LIMS_JSON_SCHEMA.model_copy(update={"rows_path": "data.results"})
    define_schema(batch.store, qa, "wrong-path", wrong)
    with pytest.raises(ReviewRefusedError, match="no key 'data'"):
        import_results(batch.store, chen, batch.run_id, path, schema_name="wrong-path")
    outcome = import_results(batch.store, chen, batch.run_id, path, schema_name="sim-json")
    assert len(outcome.results) == 8


def test_file_size_limit(schema: Batch, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    batch = schema
    path = write(tmp_path / "results.csv", rows_of(batch))
    monkeypatch.setattr(lims_parse, "MAX_BYTES", 100)
    head = batch.site.head()
    with pytest.raises(ReviewRefusedError, match="over the 100-byte limit"):
        import_results(
            batch.store, batch.site.sign_in("lab.chen"), batch.run_id, path, schema_name="sim-lims"
        )
    assert [r.cause for r in refusals(batch, head)] == ["file_too_large"]


def test_decimal_comma(tmp_path: Path) -> None:
    schema = LimsSchema.model_validate(
        {**SIM_LIMS_SCHEMA.model_dump(), "decimal_comma": True, "delimiter": ";"}
    )
    row = {c: "x" for c in COLUMNS} | {
        "ANALYSIS": "VIAB",
        "RESULT": "91,5",
        "TESTED_ON": "20/01/2026",
        "STATUS": "AUTHORISED",
        "UNITS": "PCT",
    }
    path = write(tmp_path / "r.csv", [row], delimiter=";")
    export = lims_parse.parse_export(path, schema)
    assert export.rows[0].value == 91.5 and export.rows[0].unit == "%"


def test_verify_resolves_the_import_schema(schema: Batch, tmp_path: Path) -> None:
    batch = schema
    path = write(tmp_path / "results.csv", rows_of(batch))
    dry = check_import(batch.store, batch.run_id, path, schema_name="sim-lims")
    with batch.store.reading() as conn:
        found = lims_schema(conn, "sim-lims")
    assert found is not None
    signature = batch.site.head()  # the schema's signature, not its definition
    with batch.store.transaction() as tx:
        ref = tx.append(
            QcResultsImported(
                by="lab.chen",
                terminal=TERMINAL,
                run_id=batch.run_id,
                file_name="results.csv",
                file_sha256=dry.file_sha256,
                file_bytes=1,
                schema_name="sim-lims",
                schema_ref=found[2].model_copy(update={"seq": signature}),
                results=dry.results,
                observed=dry.observed,
                verdicts=dry.verdicts,
            )
        )
    with Journal(batch.path, create=False) as journal:
        report = verify_journal(journal, site_replay=replay_problem)
    assert f"site record {ref.seq}: import names LIMS schema 'sim-lims'" in str(report)
