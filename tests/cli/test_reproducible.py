"""A seeded simulated run is reproducible: same inputs, byte-identical exported record."""

from __future__ import annotations

from pathlib import Path

from cellauto.records.backend import Location
from tests.cli.conftest import DEMO, Cli, run_id_of


def _run_and_export(cli: Cli, folder: Path, *extra: str) -> tuple[str, dict[str, bytes]]:
    folder.mkdir()
    db = folder / "j.db"
    result = cli("run", DEMO, "--sim", "--seed", "21", "--db", db, *extra)
    assert result.code == 0, result.err
    run_id = run_id_of(result)
    assert cli("export", run_id, "--out", folder / "out", "--db", db).code == 0
    files = {p.name: p.read_bytes() for p in sorted((folder / "out").iterdir())}
    return run_id, files


def test_same_seed_gives_a_byte_identical_export(cli: Cli, tmp_path: Path) -> None:
    first_id, first = _run_and_export(cli, tmp_path / "a")
    second_id, second = _run_and_export(cli, tmp_path / "b")
    assert first_id == second_id
    assert first.keys() == second.keys() and "run.json" in first
    assert first == second
    assert b"reproducible simulation" in first["run_started.csv"]


def test_another_seed_or_start_gives_another_record(cli: Cli, tmp_path: Path) -> None:
    base_id, base = _run_and_export(cli, tmp_path / "a")
    later_id, later = _run_and_export(cli, tmp_path / "b", "--start", "2026-06-01T06:00:00Z")
    assert later_id != base_id and later["run.json"] != base["run.json"]


def test_a_second_seeded_run_in_one_journal_gets_its_own_id(
    cli: Cli, db_location: Location, tmp_path: Path
) -> None:
    db = db_location
    ids = {run_id_of(cli("run", DEMO, "--sim", "--seed", "3", "--db", db)) for _ in range(2)}
    assert len(ids) == 2
