"""A demo run through the CLI, then runs / show / verify / export of it."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from pathlib import Path

from cellauto.records import Journal, RecordKind
from cellauto.records import payloads as rec
from cellauto.records.backend import Location
from tests.cli.conftest import DEMO, Cli, journal_records, run_demo, run_id_of

STEPS = ("receive_material", "seed_culture", "expand", "harvest")
# "    14  2026-01-05 08:00:00    > bioreactor.draw_sample(...)": an instrument line
IO_LINE = re.compile(r"^ *\d+  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d    ([<>=] \w+\.\w+|· checkpoint )")


def test_run_prints_its_id_first_and_completes(
    cli: Cli, db_location: Location, tmp_path: Path
) -> None:
    db = db_location
    result = cli("run", DEMO, "--sim", "--seed", 3, "--db", db, "--operator", "tester")

    assert result.code == 0, result.err
    run_id = run_id_of(result)
    assert result.lines[-1].startswith(f"run {run_id} ended Complete (complete)")
    assert result.err == ""
    with Journal(db, create=False) as journal:
        (summary,) = journal.runs()
    assert summary.run_id == run_id
    assert summary.state == "Complete"
    assert summary.exit_status == "complete"
    assert summary.protocol_name == "demo-expansion"
    assert summary.sealed


def test_runs_lists_the_run(cli: Cli, db_location: Location, tmp_path: Path) -> None:
    db = db_location
    run_id = run_demo(cli, db)

    result = cli("runs", "--db", db)

    assert result.code == 0
    header, *rows = result.lines
    assert header.split()[:4] == ["RUN", "ID", "PROTOCOL", "VERSION"]
    assert len(rows) == 1
    fields = rows[0].split()
    assert len(fields[0]) == 12 and run_id.startswith(fields[0])
    assert fields[1:4] == ["demo-expansion", "1.0.0", "Complete"]


def test_runs_on_an_empty_journal_says_so(cli: Cli, db_location: Location, tmp_path: Path) -> None:
    db = db_location
    Journal(db).close()

    result = cli("runs", "--db", db)

    assert result.code == 0
    assert result.out.startswith("no runs in")


def test_show_prints_the_timeline(cli: Cli, db_location: Location, tmp_path: Path) -> None:
    db = db_location
    run_id = run_demo(cli, db)
    records = journal_records(db, run_id)

    result = cli("show", run_id[:8], "--db", db)

    assert result.code == 0, result.err
    assert result.lines[0] == f"run {run_id}: {len(records)} records"
    text = result.out
    for index, step in enumerate(STEPS, start=1):
        assert f"step {index} started:" in text and step in text
        assert f"step {step} completed in" in text
    assert "run started: demo-expansion 1.0.0" in text
    assert "check chain of identity: observed 'W123426A1B2C3' expected 'W123426A1B2C3' pass" in text
    assert text.count("check daily viability:") == 7
    assert "check viability at harvest:" in text
    assert "check total viable cells:" in text
    assert "state Idle -> Running" in text
    assert "state Running -> Complete" in text
    assert "run ended Complete (complete)" in text
    # instrument traffic only with --all
    assert not [line for line in result.lines if IO_LINE.match(line)]
    assert "bioreactor.seed" not in text


def test_show_all_adds_instrument_calls(cli: Cli, db_location: Location, tmp_path: Path) -> None:
    db = db_location
    run_id = run_demo(cli, db)
    records = journal_records(db, run_id)

    result = cli("show", "--all", run_id, "--db", db)

    assert result.code == 0, result.err
    assert len(result.lines) == 1 + len(records)  # every record, one line each
    io_kinds = {
        RecordKind.INSTRUMENT_COMMAND,
        RecordKind.INSTRUMENT_RESPONSE,
        RecordKind.READING,
        RecordKind.CHECKPOINT,
    }
    io_lines = [line for line in result.lines if IO_LINE.match(line)]
    assert len(io_lines) == sum(r.kind in io_kinds for r in records) > 0
    text = result.out
    assert "  > bioreactor.seed(" in text
    assert '  < bioreactor.seed: {"culture_volume_ml":500.0}' in text
    assert "  > counter.count(" in text
    assert "  = scanner.scan:" in text
    assert "check daily viability:" in text
    printed_seqs = [int(line.split()[0]) for line in result.lines[1:]]
    assert printed_seqs == [r.seq for r in records]


def test_verify_says_intact(cli: Cli, db_location: Location, tmp_path: Path) -> None:
    db = db_location
    run_id = run_demo(cli, db)
    count = len(journal_records(db, run_id))

    everything = cli("verify", "--db", db)
    one = cli("verify", run_id[:6], "--db", db)

    for result in (everything, one):
        assert result.code == 0, result.out + result.err
        assert result.lines[0] == (
            f"run {run_id}: intact, {count} records, sealed, "
            f"head {result.lines[0].rsplit(' ', 1)[1]}"
        )
        # the run begun, one anchor per 100 records, the seal
        entries = 2 + (count - 1) // 100
        assert result.lines[1].startswith(f"ledger: intact, {entries} entries, head ")
        assert result.lines[2].startswith("signatures checked with the public key ")
        assert result.lines[3] == "site: no records"
        assert len(result.lines) == 4
    head = journal_records(db, run_id)[-1].hash
    assert everything.lines[0].endswith(f"head {head}")


def test_export_writes_a_csv_per_kind_and_run_json(
    cli: Cli, db_location: Location, tmp_path: Path
) -> None:
    db = db_location
    run_id = run_demo(cli, db)
    records = journal_records(db, run_id)
    out = tmp_path / "export" / "nested"

    result = cli("export", run_id[:10], "--out", out, "--db", db)

    assert result.code == 0, result.err
    printed = {Path(line) for line in result.lines}
    assert printed == set(out.iterdir())
    kinds = Counter(record.kind for record in records)
    assert {RecordKind.CHECK_RESULT, RecordKind.INSTRUMENT_COMMAND} <= set(kinds)
    assert {p.name for p in out.glob("*.csv")} == {f"{kind.value}.csv" for kind in kinds}
    assert {p.name for p in out.iterdir()} == {f"{k.value}.csv" for k in kinds} | {"run.json"}
    for kind, count in kinds.items():
        with (out / f"{kind.value}.csv").open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        assert len(rows) == count
        assert [int(row["seq"]) for row in rows] == [r.seq for r in records if r.kind is kind]
        assert {row["kind"] for row in rows} == {kind.value}

    document = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert document["run_id"] == run_id
    assert document["chain"]["intact"] is True
    assert document["chain"]["records"] == len(records)
    assert len(document["records"]) == len(records)
    for exported, record in zip(document["records"], records, strict=True):
        expected = record.model_dump(mode="json")
        assert {key: exported[key] for key in expected} == expected


def test_same_seed_gives_the_same_check_values(
    cli: Cli, db_location: Location, tmp_path: Path
) -> None:
    db = db_location
    first = run_demo(cli, db, seed=3)
    second = run_demo(cli, db, seed=3)
    other = run_demo(cli, db, seed=4)

    def checks(run_id: str) -> list[tuple[str, float]]:
        return [
            (r.payload.check, r.payload.value)
            for r in journal_records(db, run_id)
            if isinstance(r.payload, rec.CheckResult)
        ]

    assert first != second
    assert len(checks(first)) == 9  # 7 daily viabilities + 2 at harvest
    assert checks(first) == checks(second)
    assert checks(first) != checks(other)  # the seed does matter
