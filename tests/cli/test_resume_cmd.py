"""`cellauto resume`: a run whose controller was killed resumes on the line that outlived it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from cellauto.records import Journal, RecordKind, verify_run
from cellauto.records.backend import Location
from tests.cli.conftest import Cli

SPEED = 600  # ten process minutes per real second

FREEZE_ONLY = '''
from cellauto import Protocol, Run
from cellauto.instruments.controlled_rate_freezer import (
    ControlledRateFreezer,
    standard_freeze_profile,
)

protocol = Protocol("freeze-only", version="1")


@protocol.step(resume="reconcile", expected_duration_h=2)
async def freeze(run: Run, freezer: ControlledRateFreezer) -> None:
    """Start the freeze, or follow the one already running after a crash."""
    state = (await freezer.status()).state if run.resumed is not None else "idle"
    if state not in ("running", "complete"):
        await freezer.load_profile(standard_freeze_profile())
        await freezer.start(["bag"])
    async for _reading in freezer.temperatures(interval_s=60):
        pass
    run.set_value("end state", (await freezer.result()).end_state)
'''


def _serve(tmp_path: Path) -> tuple[subprocess.Popen[str], str, str]:
    served = tmp_path / "serve.toml"
    served.write_text(
        f'name = "crash"\n[simulation]\nseed = 1\nspeed = {SPEED}\n'
        '[[simulation.materials]]\ncontainer_id = "bag"\nmaterial = "t_cells"\n'
        '[equipment.freezer]\nadapter = "visa"\ninterface = "ControlledRateFreezer"\n'
        'endpoint = "TCPIP0::127.0.0.1::0::SOCKET"\n',
        encoding="utf-8",
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "cellauto", "sim", "serve", str(served), "--for-s", "120"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    announced = json.loads(server.stdout.readline())
    return server, announced["endpoints"]["freezer"], announced["epoch"]


def test_a_killed_controller_resumes_and_the_freeze_is_not_started_twice(
    cli: Cli, db_location: Location, tmp_path: Path
) -> None:
    server, endpoint, epoch = _serve(tmp_path)
    try:
        protocol = tmp_path / "freeze_only.py"
        protocol.write_text(FREEZE_ONLY, encoding="utf-8")
        line = tmp_path / "line.toml"
        line.write_text(
            f'name = "crash"\n[simulation]\nspeed = {SPEED}\nepoch = {epoch}\n'
            f'[equipment.freezer]\nadapter = "visa"\nendpoint = "{endpoint}"\n',
            encoding="utf-8",
        )
        db = db_location
        controller = subprocess.Popen(
            [
                *(sys.executable, "-m", "cellauto", "run", str(protocol), "--line", str(line)),
                *("--db", str(db), "--on-hold", "stop"),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert controller.stdout is not None
        run_id = controller.stdout.readline().split()[1]
        time.sleep(3)  # half an hour of process time into the freeze
        os.kill(controller.pid, signal.SIGKILL)  # the controller dies; the freezer runs on
        controller.wait(timeout=10)

        resumed = cli("resume", protocol, run_id[:8], "--line", line, "--db", db)
        assert resumed.code == 0, resumed.err + resumed.out
        assert f"resuming run {run_id}" in resumed.out
        assert "ended Complete (complete)" in resumed.out
    finally:
        server.terminate()
        server.wait(timeout=10)
    with Journal(db, create=False) as journal:
        starts = [
            r
            for r in journal.records(run_id, {RecordKind.INSTRUMENT_COMMAND})
            if r.payload.method == "start"
        ]
        (resume,) = journal.records(run_id, {RecordKind.RUN_RESUMED})
        values = {
            r.payload.name: r.payload.value
            for r in journal.records(run_id, {RecordKind.BATCH_VALUE})
        }
        claims = [r.payload for r in journal.records(run_id, {RecordKind.CONTROLLER_CLAIMED})]
        report = verify_run(journal, run_id)
        records = journal.records(run_id)
    # the killed controller's claim was taken over at once (its process was gone)
    assert [(c.epoch, c.pid) for c in claims] == [(1, controller.pid), (2, os.getpid())]
    previous = claims[1].taken_over_from
    assert previous is not None and (previous.pid, previous.why) == (controller.pid, "gone")
    assert len(starts) == 1
    # one process time for the line: the controllers read the served line's, whenever they
    # started (tolerance: a real second of scheduling between reading the two clocks)
    epoch_s = datetime.fromisoformat(epoch).timestamp()
    for record in records:
        line_time_s = epoch_s + (record.wall_time_ns / 1e9 - epoch_s) * SPEED
        assert record.process_time_s == pytest.approx(line_time_s, abs=SPEED * 1.0), [
            (r.seq, r.kind, r.process_time_s - epoch_s - (r.wall_time_ns / 1e9 - epoch_s) * SPEED)
            for r in records
        ]
    assert resume.payload.interrupted_step == "freeze"
    assert resume.payload.instrument_errors_at_connect == {}  # the freezer's queue was empty
    assert values["end state"] == "complete"
    assert report.intact and report.sealed and report.ended


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("serve", "simulated inside the controller's own process"),
        ("missing-db", "no journal"),
    ],
)
def test_a_resume_that_cannot_be_is_refused_with_exit_2(
    cli: Cli, tmp_path: Path, line: str, message: str
) -> None:
    protocol = tmp_path / "freeze_only.py"
    protocol.write_text(FREEZE_ONLY, encoding="utf-8")
    config = tmp_path / "line.toml"
    serve = "true" if line == "serve" else "false"
    config.write_text(
        f'name = "x"\n[simulation]\nserve = {serve}\n'
        '[equipment.freezer]\nadapter = "visa"\nendpoint = "TCPIP0::127.0.0.1::5999::SOCKET"\n',
        encoding="utf-8",
    )
    result = cli("resume", protocol, "abc", "--line", config, "--db", tmp_path / "none.db")
    assert result.code == 2
    assert message in result.err
    assert not (tmp_path / "none.db").exists()


def test_a_resumed_run_reads_back_in_show_verify_and_export(
    cli: Cli, db_location: Location, tmp_path: Path
) -> None:
    from cellauto.sim import simulate

    db = db_location
    car_t = Path(__file__).resolve().parents[2] / "protocols" / "car_t_autologous.py"
    run = simulate(car_t, seed=3, crashes=[100.0], downtime_h=2, db=db, patient="typical")
    run_id = run.outcome.run_id
    shown = cli("show", run_id[:10], "--db", db)
    assert shown.code == 0
    assert re.search(
        r"RUN RESUMED by runner after a controller restart, 2h\d\dm after the last record: "
        r"Running, step expand in progress \(reconcile\)",
        shown.out,
    )
    assert cli("verify", run_id, "--db", db).code == 0
    exported = cli("export", run_id, "--out", tmp_path / "out", "--db", db)
    assert exported.code == 0
    assert (tmp_path / "out" / "run_resumed.csv").exists()
