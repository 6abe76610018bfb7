"""The operator console: prompts in real time, survives end of input; review findings."""

from __future__ import annotations

import builtins
import io
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from cellauto.records import Journal
from cellauto.records import payloads as rec
from cellauto.records.backend import Location
from tests.cli.conftest import DEMO, Cli, journal_records, run_id_of, write_protocol
from tests.raw_sql import nothing_written, raw_connect

WATCHED_HOLD = """
from cellauto import Protocol, Run, Spec

protocol = Protocol("watched-hold", version="1")


@protocol.step(checks={"x": Spec(min=2)}, max_duration_h=1)
async def measure(run: Run) -> None:
    run.check("x", 1)
    await run.hold_point()
"""


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_virtual_time_waits_for_the_operator(
    cli: Cli, db_location: Location, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the operator thinks, the step's 1 h watchdog must not fire."""

    def slow_operator(prompt: str = "") -> str:
        time.sleep(0.3)
        return "restart"

    monkeypatch.setattr(sys, "stdin", _Terminal(""))
    monkeypatch.setattr(builtins, "input", slow_operator)
    db = db_location
    result = cli("run", write_protocol(tmp_path, "p.py", WATCHED_HOLD), "--sim", "--db", db)
    assert result.code == 0, result.err
    records = journal_records(db, run_id_of(result))
    checks = [r.payload.check for r in records if r.kind == "deviation"]
    assert checks == ["x"]  # no "max duration" deviation: virtual time did not race
    held = next(r for r in records if r.kind == "state_change" and r.payload.to_state == "Held")
    restart = next(r for r in records if r.kind == "command" and r.payload.command == "Restart")
    assert restart.process_time_s - held.process_time_s < 60


def test_end_of_input_at_the_prompt_stops_the_run_in_order(
    cli: Cli, db_location: Location, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_input(prompt: str = "") -> str:
        raise EOFError

    monkeypatch.setattr(sys, "stdin", _Terminal(""))
    monkeypatch.setattr(builtins, "input", no_input)
    db = db_location
    result = cli("run", write_protocol(tmp_path, "p.py", WATCHED_HOLD), "--sim", "--db", db)
    assert result.code == 1
    records = journal_records(db, run_id_of(result))
    assert records[-1].kind == "run_ended" and records[-1].payload.exit_status == "stopped"
    assert cli("verify", "--db", db).code == 0


def test_export_of_a_tampered_run_warns_and_exits_1(
    cli: Cli, db_location: Location, tmp_path: Path
) -> None:
    db = db_location
    run_id = run_id_of(cli("run", DEMO, "--sim", "--seed", "1", "--db", db))
    with closing(raw_connect(db)) as conn:
        conn.execute(
            "UPDATE records SET body = replace(body, '\"passed\":true', '\"passed\":false') "
            "WHERE run_id = ? AND kind = 'check_result' AND seq = "
            "(SELECT min(seq) FROM records WHERE run_id = ? AND kind = 'check_result')",
            (run_id, run_id),
        )
    result = cli("export", run_id, "--out", tmp_path / "out", "--db", db)
    assert result.code == 1 and "BROKEN" in result.err
    assert (tmp_path / "out" / "run.json").is_file()


def test_an_estimate_that_fails_is_bad_input_and_writes_nothing(cli: Cli, tmp_path: Path) -> None:
    source = """
from cellauto import Protocol, Run

protocol = Protocol("bad-estimate", version="1")


@protocol.step(expected_duration_h=lambda params: params.no_such_field)
async def only(run: Run) -> None:
    pass
"""
    db = tmp_path / "x.db"
    result = cli("run", write_protocol(tmp_path, "p.py", source), "--sim", "--db", db)
    assert result.code == 2 and "'only'" in result.err and "expected_duration_h" in result.err
    assert nothing_written(db)


@pytest.mark.parametrize("where", ["missing folder", "not a journal"])
def test_an_unusable_db_is_bad_input(cli: Cli, tmp_path: Path, where: str) -> None:
    if where == "missing folder":
        db = tmp_path / "nope" / "x.db"
    else:
        db = tmp_path / "x.db"
        with closing(raw_connect(db)) as conn:
            conn.execute("CREATE TABLE t (x)")
    result = cli("run", DEMO, "--sim", "--db", db)
    assert result.code == 2 and str(db.name) in result.err


def test_verify_flags_a_run_that_never_ended(
    cli: Cli, db_location: Location, tmp_path: Path
) -> None:
    db = db_location
    with Journal(db) as journal:  # a controller that stopped mid-run (its tail anchored)
        run = journal.begin_run("stopped-run", lambda: 0.0)
        for i in range(5):
            run.append(
                rec.Reading(instrument="probe", method="read", arguments={}, step=None, value=i)
            )
    result = cli("verify", "--db", db)
    assert result.code == 1 and "INCOMPLETE" in result.out
    assert "signed up to record 4" in result.out
