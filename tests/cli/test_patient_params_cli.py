"""`cellauto run` on a real line needs the patient's own parameters; a simulation does not."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import REPO, Cli

CAR_T = REPO / "protocols" / "car_t_autologous.py"


def test_run_on_a_real_line_without_the_patient_is_refused_before_anything(
    cli: Cli, tmp_path: Path
) -> None:
    line = tmp_path / "plant.toml"
    line.write_text(
        'name = "plant"\n\n[equipment.scanner]\nadapter = "tcp"\ninterface = "BarcodeScanner"\n'
        'endpoint = "tcp://127.0.0.1:9"\n',
        encoding="utf-8",
    )
    db = tmp_path / "plant.db"
    result = cli("run", CAR_T, "--line", line, "--db", db)
    assert result.code == 2, result.err
    assert "'coi', 'din', 'patient_weight_kg' are the patient's own" in result.err
    assert not db.exists()


def test_the_simulated_line_still_runs_without_them(cli: Cli, tmp_path: Path) -> None:
    result = cli(
        "run",
        CAR_T,
        "--sim",
        "--seed",
        "1",
        "--db",
        tmp_path / "j.db",
        "--param",
        "expansion_days=7",
    )
    assert result.code == 0, result.err
