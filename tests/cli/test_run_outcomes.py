"""Runs that do not complete exit 1; a Held run follows --on-hold."""

from __future__ import annotations

import builtins
import io
import sys
from pathlib import Path

import pytest

from cellauto.records import Journal, RecordKind
from tests.cli.conftest import Cli, journal_records, run_id_of, write_protocol

ABORT_PROTOCOL = """
from cellauto import Protocol, Run, Spec

protocol = Protocol("abort-on-fail", version="0.1")


@protocol.step
async def measure(run: Run) -> None:
    run.check("x", 1, Spec(min=2, policy="abort"))


@protocol.step
async def after(run: Run) -> None:
    pass
"""

HOLD_PROTOCOL = """
from cellauto import Protocol, Run, Spec

protocol = Protocol("hold-on-fail", version="0.2")


@protocol.step(checks={"x": Spec(min=2, unit="u")})
async def measure(run: Run) -> None:
    run.check("x", 1)


@protocol.step
async def after(run: Run) -> None:
    run.check("y", 3, Spec(min=2))
"""

NAN_PROTOCOL = """
from cellauto import Protocol, Run, Spec

protocol = Protocol("nan-check", version="1")


@protocol.step
async def measure(run: Run) -> None:
    run.check("x", float("nan"), Spec(min=1, policy="continue"))
"""


def _run(cli: Cli, tmp_path: Path, source: str, *extra: object) -> tuple[int, str, Path]:
    db = tmp_path / "x.db"
    protocol = write_protocol(tmp_path, "protocol.py", source)
    result = cli("run", protocol, "--sim", "--db", db, "--operator", "tester", *extra)
    return result.code, run_id_of(result), db


def _runs_row(cli: Cli, db: Path, run_id: str) -> list[str]:
    result = cli("runs", "--db", db)
    assert result.code == 0
    (row,) = [line.split() for line in result.lines[1:] if run_id.startswith(line.split()[0])]
    return row


def _states(db: Path, run_id: str) -> list[str]:
    return [
        r.payload.to_state for r in journal_records(db, run_id) if r.kind is RecordKind.STATE_CHANGE
    ]


def _steps_completed(db: Path, run_id: str) -> list[str]:
    return [
        r.payload.step for r in journal_records(db, run_id) if r.kind is RecordKind.STEP_COMPLETED
    ]


def test_failed_abort_check_exits_1_and_run_is_aborted(cli: Cli, tmp_path: Path) -> None:
    code, run_id, db = _run(cli, tmp_path, ABORT_PROTOCOL)

    assert code == 1
    assert _runs_row(cli, db, run_id)[1:4] == ["abort-on-fail", "0.1", "Aborted"]
    records = journal_records(db, run_id)
    deviations = [r for r in records if r.kind is RecordKind.DEVIATION]
    assert len(deviations) == 1 and deviations[0].payload.policy == "abort"
    assert records[-1].payload.exit_status == "aborted"
    assert _steps_completed(db, run_id) == []
    assert cli("verify", "--db", db).code == 0  # an aborted run is still an intact record


def test_held_run_with_on_hold_stop_exits_1_and_is_stopped(cli: Cli, tmp_path: Path) -> None:
    code, run_id, db = _run(cli, tmp_path, HOLD_PROTOCOL, "--on-hold", "stop")

    assert code == 1
    assert _runs_row(cli, db, run_id)[1:4] == ["hold-on-fail", "0.2", "Stopped"]
    assert _states(db, run_id) == ["Running", "Holding", "Held", "Stopping", "Stopped"]
    assert _steps_completed(db, run_id) == ["measure"]  # the next step never started
    assert journal_records(db, run_id)[-1].payload.exit_status == "stopped"


def test_held_run_with_on_hold_abort_exits_1_and_is_aborted(cli: Cli, tmp_path: Path) -> None:
    code, run_id, db = _run(cli, tmp_path, HOLD_PROTOCOL, "--on-hold", "abort")

    assert code == 1
    assert _runs_row(cli, db, run_id)[3] == "Aborted"
    assert _states(db, run_id)[-3:] == ["Held", "Aborting", "Aborted"]


def test_held_run_with_on_hold_restart_completes(cli: Cli, tmp_path: Path) -> None:
    code, run_id, db = _run(cli, tmp_path, HOLD_PROTOCOL, "--on-hold", "restart")

    assert code == 0
    assert _runs_row(cli, db, run_id)[3] == "Complete"
    records = journal_records(db, run_id)
    (deviation,) = [r for r in records if r.kind is RecordKind.DEVIATION]
    assert deviation.payload.check == "x" and deviation.payload.policy == "hold"
    assert _states(db, run_id) == [
        "Running",
        "Holding",
        "Held",
        "Restarting",
        "Running",
        "Complete",
    ]
    restart = [
        r for r in records if r.kind is RecordKind.COMMAND and r.payload.command == "Restart"
    ]
    assert [r.payload.by for r in restart] == ["cli --on-hold restart"]
    assert _steps_completed(db, run_id) == ["measure", "after"]
    show = cli("show", run_id, "--db", db)
    assert "DEVIATION (hold)" in show.out
    assert "state Held -> Restarting" in show.out


def test_without_a_terminal_a_held_run_stops(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))

    code, run_id, db = _run(cli, tmp_path, HOLD_PROTOCOL)

    assert code == 1
    assert _states(db, run_id)[-1] == "Stopped"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_operator_decides(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = iter(["wait", "Restart"])
    prompts: list[str] = []

    def fake_input(prompt: str = "") -> str:
        prompts.append(prompt)
        return next(answers)

    monkeypatch.setattr(sys, "stdin", _Terminal(""))
    monkeypatch.setattr(builtins, "input", fake_input)

    code, run_id, db = _run(cli, tmp_path, HOLD_PROTOCOL)

    assert code == 0
    assert len(prompts) == 2 and "restart, stop or abort" in prompts[0]
    restart = [
        r
        for r in journal_records(db, run_id)
        if r.kind is RecordKind.COMMAND and r.payload.command == "Restart"
    ]
    assert [r.payload.by for r in restart] == ["tester"]
    assert _states(db, run_id)[-1] == "Complete"


def test_the_process_exit_status_matches_the_journal(cli: Cli, tmp_path: Path) -> None:
    cases = [(ABORT_PROTOCOL, (), 1), (HOLD_PROTOCOL, ("--on-hold", "restart"), 0)]
    for index, (source, extra, expected) in enumerate(cases):
        directory = tmp_path / str(index)
        directory.mkdir()
        code, run_id, db = _run(cli, directory, source, *extra)
        with Journal(db, create=False) as journal:
            (summary,) = journal.runs()
        assert summary.run_id == run_id
        assert code == expected
        assert (summary.exit_status == "complete") == (code == 0)


def test_show_a_run_with_a_non_finite_check_value(cli: Cli, tmp_path: Path) -> None:
    code, run_id, db = _run(cli, tmp_path, NAN_PROTOCOL)
    assert code == 0  # policy continue: the run completes with a deviation

    result = cli("show", run_id, "--db", db)

    assert result.code == 0
    assert "check x: nan" in result.out.lower()
    assert "FAIL" in result.out
