"""One controller per run, from the command line: a second `run`/`resume` is refused."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import anyio
import pytest

from cellauto.cli.run_cmd import run_and_report
from cellauto.clock import Clock, virtual_loop_factory
from cellauto.errors import FencedError
from cellauto.protocols import Runner, load_protocol
from cellauto.protocols.execution import RunOutcome
from cellauto.protocols.params import build_params
from cellauto.records import Journal, RecordKind
from cellauto.records.backend import Location
from cellauto.sim import sim_line_for_protocol
from cellauto.sim.simulate import DEFAULT_SIM_START
from tests.cli.conftest import DEMO, Cli, db_files, run_demo
from tests.records.conftest import StepClock
from tests.records.factory import payload_of

QUIET = 3600.0  # the owner writes no heartbeat while the test compares bytes

FREEZE_ONLY = '''
from cellauto import Protocol, Run
from cellauto.instruments.controlled_rate_freezer import ControlledRateFreezer

protocol = Protocol("freeze-only", version="1")


@protocol.step(resume="reconcile", expected_duration_h=2)
async def freeze(run: Run, freezer: ControlledRateFreezer) -> None:
    """Follow the freeze."""
    await freezer.status()
'''


def _files(db: Path | Location) -> dict[str, bytes]:
    return db_files(db)


def _names_this_process(message: str) -> None:
    assert f"pid {os.getpid()}" in message and socket.gethostname() in message
    assert "since " in message and "epoch 1" in message


def test_a_second_resume_of_a_live_run_is_refused_at_once_with_exit_2(
    cli: Cli, db_location: Location, tmp_path: Path
) -> None:
    protocol = tmp_path / "freeze_only.py"
    protocol.write_text(FREEZE_ONLY, encoding="utf-8")
    line = tmp_path / "line.toml"  # nothing listens there: the refusal comes first
    line.write_text(
        'name = "x"\n[equipment.freezer]\nadapter = "visa"\n'
        'endpoint = "TCPIP0::127.0.0.1::9::SOCKET"\n',
        encoding="utf-8",
    )
    db = db_location
    with Journal(db, owner_stale_s=QUIET) as owner:
        run = owner.begin_run("0123456789abcdef", StepClock())
        run.append(payload_of(RecordKind.RUN_STARTED, {"run_id": "0123456789abcdef"}))
        owner.flush()
        before = _files(db)
        result = cli("resume", protocol, "01234567", "--line", line, "--db", db)
        assert result.code == 2, result.err
        assert "run 0123456789abcdef" in result.err and "Wait for that controller" in result.err
        _names_this_process(result.err)
        assert _files(db) == before


def test_a_second_run_under_a_run_id_a_live_controller_holds_is_refused_with_exit_2(
    cli: Cli, db_location: Location, tmp_path: Path
) -> None:
    """A seeded simulated run has a reproducible id: a second controller started with the
    same inputs at the same moment would take the same id."""
    protocol = load_protocol(DEMO)
    params = build_params(protocol.params, {})
    db = db_location

    async def prepare(owner: Journal) -> str:
        clock = Clock(DEFAULT_SIM_START)
        sim = sim_line_for_protocol(protocol, params, clock=clock, seed=21)
        assert sim.line is not None
        runner = Runner(owner, clock_origin=DEFAULT_SIM_START, reproducible=True)
        return runner.prepare(protocol, sim.line, params, seed=21).run_id  # claimed only

    with Journal(db, owner_stale_s=QUIET) as owner:
        run_id = anyio.run(prepare, owner, backend_options={"loop_factory": virtual_loop_factory})
        before = _files(db)
        result = cli("run", DEMO, "--sim", "--seed", "21", "--db", db)
        assert result.code == 2, result.err
        assert f"run {run_id}" in result.err
        _names_this_process(result.err)
        assert _files(db) == before


def test_show_says_who_controlled_the_run(cli: Cli, db_location: Location, tmp_path: Path) -> None:
    db = db_location
    run_id = run_demo(cli, db)
    shown = cli("show", run_id, "--db", db)
    assert shown.code == 0
    claims = [line for line in shown.lines if "CONTROLLER" in line]
    assert len(claims) == 1
    assert claims[0].endswith(
        "CONTROLLER epoch 1 (simulation: host and pid not recorded) took charge of the run"
    )


def test_a_controller_whose_run_was_taken_over_ends_with_the_fence_error() -> None:
    async def main() -> RunOutcome:
        raise BaseExceptionGroup("run", [FencedError("run r: taken over by pid 7")])

    with pytest.raises(FencedError, match="taken over by pid 7"):
        run_and_report(main, None)


def test_the_command_line_says_so_and_exits_1(
    cli: Cli, db_location: Location, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fenced(*_args: object) -> int:
        raise FencedError("run r: taken over by pid 7 on host 'h' (epoch 2)")

    monkeypatch.setattr("cellauto.cli.run_cmd.run_and_report", fenced)
    result = cli("run", DEMO, "--sim", "--db", db_location)
    assert result.code == 1
    assert "cellauto: error: run r: taken over by pid 7" in result.err


def test_after_a_takeover_the_old_owners_late_records_are_refused_and_verify_passes(
    cli: Cli, db_location: Location, tmp_path: Path
) -> None:
    db = db_location
    with Journal(db, owner_stale_s=QUIET) as old:
        old_run = old.begin_run("run-a", StepClock())
        old_run.append(payload_of(RecordKind.RUN_STARTED, {"run_id": "run-a"}))
        old.flush()
        with Journal(db, create=False, owner_stale_s=0) as new:  # the old one is stale
            run = new.resume_run("run-a", StepClock())
            run.append(payload_of(RecordKind.READING, {"v": "new"}))
            new.flush()
            old_run.append(payload_of(RecordKind.READING, {"v": "late"}))
            old.flush()  # the late record is left out of the commit
            with pytest.raises(FencedError):
                old_run.append(payload_of(RecordKind.READING, {"v": "later"}))
            run.seal()
    verified = cli("verify", "--db", db)
    assert verified.code == 0, verified.out
    assert verified.lines[0].startswith("run run-a: intact, 2 records, sealed")
