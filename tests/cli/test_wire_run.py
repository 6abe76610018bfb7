"""The CAR-T protocol over the wire: SCPI-served counter and freezer, same results."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import pyvisa

from cellauto.records import Journal
from cellauto.records.backend import Location
from tests.cli.conftest import Cli, run_id_of

ROOT = Path(__file__).resolve().parents[2]
CAR_T = ROOT / "protocols" / "car_t_autologous.py"
WIRE_LINE = ROOT / "lines" / "sim-wire.toml"
OPCUA_LINE = ROOT / "lines" / "sim-opcua.toml"


def _identity_checks(db: Path, run_id: str) -> list[dict[str, object]]:
    with Journal(db, create=False) as journal:
        records = journal.records(run_id)
    return [r.payload.model_dump() for r in records if r.kind == "identity_check"]


def _values(db: Path, run_id: str) -> dict[str, float]:
    with Journal(db, create=False) as journal:
        records = journal.records(run_id)
    return {r.payload.name: r.payload.value for r in records if r.kind == "batch_value"}


@pytest.mark.parametrize("line", [WIRE_LINE, OPCUA_LINE], ids=["scpi", "opcua+scpi"])
def test_car_t_over_the_wire_matches_the_in_process_run(
    cli: Cli, tmp_path: Path, line: Path
) -> None:
    wire_db, local_db = tmp_path / "wire.db", tmp_path / "local.db"
    wire = cli("run", CAR_T, "--line", line, "--patient", "typical", "--db", wire_db)
    assert wire.code == 0, wire.err
    assert "serving counter at TCPIP0::127.0.0.1::" in wire.out
    local = cli("run", CAR_T, "--sim", "--seed", "7", "--patient", "typical", "--db", local_db)
    assert local.code == 0
    over_wire, in_process = (
        _values(wire_db, run_id_of_line(wire)),
        _values(local_db, run_id_of(local)),
    )
    assert over_wire.keys() == in_process.keys()
    for name, value in in_process.items():  # real round trips nudge virtual time by ms
        assert abs(over_wire[name] - value) <= 1e-5 * abs(value) + 1e-9, name
    with Journal(wire_db, create=False) as journal:
        started = journal.records(run_id_of_line(wire))[0].payload
    assert started.instruments["counter"].adapter == "visa"
    expected = "opcua" if line == OPCUA_LINE else "in-process"
    for name in ("bioreactor", "processor", "cytometer", "storage"):
        assert started.instruments[name].adapter == expected, name
    checks = _identity_checks(wire_db, run_id_of_line(wire))
    assert checks and checks == _identity_checks(local_db, run_id_of(local))
    # on both lines the scanner is a TCP line device: the same chain of identity
    assert "serving scanner at tcp://127.0.0.1:" in wire.out
    assert started.instruments["scanner"].adapter == "tcp"


def run_id_of_line(result) -> str:  # type: ignore[no-untyped-def]
    line = next(line for line in result.lines if line.startswith("run "))
    return line.split()[1]


def test_sim_serve_answers_a_plain_pyvisa_session(tmp_path: Path) -> None:
    line = tmp_path / "serve.toml"
    line.write_text(
        'name = "t"\n[simulation]\nspeed = 60\n'
        '[equipment.counter]\nadapter = "visa"\ninterface = "CellCounter"\n'
        'endpoint = "TCPIP0::127.0.0.1::0::SOCKET"\n',
        encoding="utf-8",
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "cellauto", "sim", "serve", str(line), "--for-s", "20"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        endpoints = json.loads(server.stdout.readline())["endpoints"]
        manager = pyvisa.ResourceManager("@py")
        session = manager.open_resource(
            endpoints["counter"], read_termination="\n", write_termination="\n", timeout=5000
        )
        assert session.query("*IDN?").startswith("cellauto-sim,SimCount")
        assert session.query("SYST:ERR?").startswith("0,")
        session.close()
    finally:
        server.terminate()
        server.wait(timeout=10)


QC_RETAINS = '''
from cellauto import MaterialInput, Params, Protocol, Run
from cellauto.instruments import BarcodeScanner, LiquidHandler


class RetainParams(Params):
    coi: str = "W123426A1B2C3"


protocol = Protocol(
    "qc-retains",
    version="1",
    params=RetainParams,
    inputs=[MaterialInput(name="product bag", material="t_cells", identity_param="coi")],
)


@protocol.step(resume="rerun")
async def receive(run: Run[RetainParams], scanner: BarcodeScanner) -> None:
    """Scan the product bag."""
    run.identity.expect(await scanner.scan("product bag"), run.params.coi)


@protocol.step(resume="operator")
async def aliquot_retains(run: Run[RetainParams], liquid_handler: LiquidHandler) -> None:
    """Aliquot two QC retains of 500 uL."""
    done = await liquid_handler.aliquot("product bag", ["retain 1", "retain 2"], 500)
    run.set_value("retained uL", sum(t.volume_ul for t in done), unit="uL")
'''


def test_the_wire_line_gives_a_protocol_its_liquid_handler(
    cli: Cli, db_location: Location, tmp_path: Path
) -> None:
    """lines/sim-wire.toml has a PyLabRobot liquid handler (and its scanner over TCP)."""
    protocol = tmp_path / "qc_retains.py"
    protocol.write_text(QC_RETAINS, encoding="utf-8")
    db = db_location
    result = cli("run", protocol, "--line", WIRE_LINE, "--db", db)
    assert result.code == 0, result.err
    run_id = run_id_of_line(result)
    assert _values(db, run_id) == {"retained uL": 1000}
    with Journal(db, create=False) as journal:
        started = journal.records(run_id)[0].payload
    assert started.instruments["liquid_handler"].adapter == "pylabrobot"
    assert started.instruments["scanner"].adapter == "tcp"


def test_car_t_over_the_wire_uses_the_plr_server(cli: Cli, tmp_path: Path) -> None:
    """CAR-T 1.3.0's release samples on lines/sim-wire.toml: the liquid handler is
    PyLabRobot over TCP (sim/plr_server.py), its aliquots counted as in process."""
    wire_db, local_db = tmp_path / "wire.db", tmp_path / "local.db"
    wire = cli("run", CAR_T, "--line", WIRE_LINE, "--patient", "typical", "--db", wire_db)
    assert wire.code == 0, wire.err
    assert "serving liquid_handler at tcp://127.0.0.1:" in wire.out
    run_id = run_id_of_line(wire)
    with Journal(wire_db, create=False) as journal:
        records = journal.records(run_id)
    started = records[0].payload
    assert started.instruments["liquid_handler"].adapter == "pylabrobot"
    assert started.instruments["liquid_handler"].model == "SerializingBackend"
    moved = [
        r.payload
        for r in records
        if r.kind == "instrument_response"
        and r.payload.instrument == "liquid_handler"
        and r.payload.ok
        and r.payload.method in ("transfer", "aliquot")
    ]
    assert len(moved) == 4  # the QC sample, then the tubes, the wells, the retains
    local = cli("run", CAR_T, "--sim", "--seed", "7", "--patient", "typical", "--db", local_db)
    assert local.code == 0
    over_wire, in_process = _values(wire_db, run_id), _values(local_db, run_id_of(local))
    for name in ("release viable cells per mL", "dose", "post-thaw viability"):
        assert over_wire[name] == pytest.approx(in_process[name], rel=1e-5), name
