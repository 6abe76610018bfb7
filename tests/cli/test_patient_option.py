"""`cellauto run --patient` and a line file's `[simulation] patient` (issue 14, S1)."""

from __future__ import annotations

from pathlib import Path

from cellauto.records import Journal
from cellauto.records import payloads as rec
from cellauto.records.backend import Location
from tests.cli.conftest import DEMO, Cli, run_id_of

ROOT = Path(__file__).resolve().parents[2]


def _simulation(db: Path) -> rec.SimulationInfo | None:
    with Journal(db, create=False) as journal:
        (summary,) = journal.runs()
        started = journal.records(summary.run_id)[0].payload
    assert isinstance(started, rec.RunStarted)
    return started.simulation


def test_the_patient_option_is_recorded(cli: Cli, tmp_path: Path) -> None:
    typical = cli(
        "run", DEMO, "--sim", "--seed", 3, "--patient", "typical", "--db", tmp_path / "t.db"
    )
    assert typical.code == 0, typical.err
    info = _simulation(tmp_path / "t.db")
    assert info is not None and info.patient_choice == "typical"
    assert info.population == "healthy_donor_t_cells" and info.patient is not None
    drawn = cli("run", DEMO, "--sim", "--seed", 3, "--db", tmp_path / "d.db")
    assert drawn.code == 0 and run_id_of(drawn)
    assert (_simulation(tmp_path / "d.db") or info).patient_choice == "drawn"
    refused = cli("run", DEMO, "--sim", "--patient", "median", "--db", tmp_path / "x.db")
    assert refused.code == 2 and "--patient" in refused.err


def test_a_served_line_file_names_the_patient(
    cli: Cli, db_location: Location, tmp_path: Path
) -> None:
    text = (ROOT / "lines" / "sim-wire.toml").read_text(encoding="utf-8")
    line = tmp_path / "line.toml"
    line.write_text(text.replace("seed = 7\n", 'seed = 7\npatient = "typical"\n', 1))
    db = db_location
    result = cli("run", ROOT / "protocols" / "car_t_autologous.py", "--line", line, "--db", db)
    assert result.code == 0, result.err
    info = _simulation(db)
    assert info is not None and info.patient_choice == "typical"
    assert info.population == "autologous_lymphoma"
