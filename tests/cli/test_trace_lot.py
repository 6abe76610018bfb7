"""`cellauto trace --lot`: the runs that used a lot, each use confirmed by its run record."""

from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path

import pytest

from cellauto.cli.trace_lot import trace_lot_command
from cellauto.protocols import Runner
from cellauto.records import Journal
from cellauto.records.backend import Location
from cellauto.sim import simulate
from cellauto.sim.site_materials import sim_lot_id
from cellauto.site.view import FileSite
from tests.cli.conftest import Cli
from tests.protocols.materials_kit import LINE, START, define, file_site, il2_protocol, lot, rows
from tests.raw_sql import raw_connect

VECTOR = "CAR lentiviral vector"


@pytest.fixture(scope="module")
def sim_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("trace") / "journal.db"
    simulate("protocols/car_t_autologous.py", db=path, patient="typical")
    return path


def test_a_simulated_runs_lot_is_found_and_confirmed(
    sim_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lot_id = sim_lot_id("car-t-autologous", VECTOR)
    assert trace_lot_command(sim_db, lot_id) == 0
    text = capsys.readouterr().out
    assert f"lot {lot_id}" in text
    assert "not on this file's site" in text
    assert f"transduce: '{VECTOR}' 5 mL into culture bag at 2026-01-" in text
    assert "car-t-autologous 1.3.0 DIN W123426000042 COI W123426A1B2C3 #" in text
    assert "(consumed; run Complete)" in text
    assert trace_lot_command(sim_db, lot_id, output="json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["site"] is None
    assert [(u["use_key"], u["confirmed"]) for u in shown["uses"]] == [(VECTOR, True)]
    assert len(shown["uses"][0]["record_hash"]) == 64


def test_an_unknown_lot_has_no_uses(sim_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert trace_lot_command(sim_db, "nothing/L0") == 0
    assert "no run used it" in capsys.readouterr().out


def test_an_edited_index_row_is_not_confirmed(
    tmp_path: Path, sim_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "j.db"
    path.write_bytes(sim_db.read_bytes())
    lot_id = sim_lot_id("car-t-autologous", VECTOR)
    with closing(raw_connect(path)) as conn:
        conn.execute("UPDATE lot_uses SET run_seq = 3 WHERE lot_id = ?", (lot_id,))
    assert trace_lot_command(path, lot_id) == 1
    assert "NOT CONFIRMED: run" in capsys.readouterr().out


@pytest.mark.anyio
async def test_a_file_sites_lot_has_its_header(
    db_location: Location, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = db_location
    file_site(path, [define(), *lot("il2/L1", quantity_ml=10.0)])
    with Journal(path) as journal, closing(FileSite(path)) as site:
        execution = Runner(journal, clock_origin=START).prepare(il2_protocol(), LINE, site=site)
        await execution.execute()
        execution.close()
    assert trace_lot_command(path, "il2/L1") == 0
    text = capsys.readouterr().out
    assert "IL-2: Acme lot IL2/L1" in text and "8 left" in text
    assert f"run {execution.run_id}" in text


CAR_T = Path(__file__).resolve().parents[2] / "protocols" / "car_t_autologous.py"


def test_run_lot_assigns_a_lot_and_bad_assignments_are_refused_unwritten(
    tmp_path: Path, cli: Cli
) -> None:
    db = tmp_path / "journal.db"
    vector_lot = sim_lot_id("car-t-autologous", VECTOR)
    done = cli(
        "run",
        CAR_T,
        "--sim",
        "--seed",
        "1",
        "--patient",
        "typical",
        "--db",
        db,
        "--lot",
        f"{VECTOR}={vector_lot}",
    )
    assert done.code == 0, done.err
    for bad, message in [
        ("no-equals-sign", "give MATERIAL=LOT"),
        ("IL-7=x", "declares no material 'IL-7'"),
        (f"{VECTOR}=SIM-nope-1", "lot 'SIM-nope-1': no such lot on this site"),
    ]:
        refused = cli("run", CAR_T, "--sim", "--seed", "2", "--db", tmp_path / "r.db", "--lot", bad)
        assert refused.code == 2, refused.out
        assert message in refused.err
    assert (
        not (tmp_path / "r.db").exists() or rows(tmp_path / "r.db", "SELECT 1 FROM records") == []
    )
