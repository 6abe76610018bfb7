"""`cellauto run` on a real line needs the patient's own parameters; a simulation does not."""

from __future__ import annotations

from pathlib import Path

from cellauto.records.backend import Location
from tests.cli.conftest import REPO, Cli
from tests.raw_sql import nothing_written

CAR_T = REPO / "protocols" / "car_t_autologous.py"


def test_run_on_a_real_line_without_the_patient_is_refused_before_anything(
    cli: Cli, db_location: Location, tmp_path: Path
) -> None:
    line = tmp_path / "plant.toml"
    line.write_text(
        'name = "plant"\n\n[equipment.scanner]\nadapter = "tcp"\ninterface = "BarcodeScanner"\n'
        'endpoint = "tcp://127.0.0.1:9"\n',
        encoding="utf-8",
    )
    db = db_location
    result = cli("run", CAR_T, "--line", line, "--db", db)
    assert result.code == 2, result.err
    assert "'coi', 'din', 'patient_weight_kg' are the patient's own" in result.err
    assert nothing_written(db)


def test_the_simulated_line_still_runs_without_them(
    cli: Cli, db_location: Location, tmp_path: Path
) -> None:
    result = cli(
        "run",
        CAR_T,
        "--sim",
        "--seed",
        "1",
        "--db",
        db_location,
        "--param",
        "expansion_days=7",
    )
    assert result.code == 0, result.err
