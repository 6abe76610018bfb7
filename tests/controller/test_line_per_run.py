"""A rehearsal controller whose line gives each run a simulated line of its own
(``[simulation] line_per_run = true``): many queued batches at once, each in its own
seeded world; a run whose controller dies is held, never resumed on a fresh world."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cellauto.controller.run_line import seed_for_run
from cellauto.records import Journal, RecordKind, verify_run
from cellauto.records import payloads as rec
from cellauto.records.backend import Location
from cellauto.records.site_store import SiteStore
from tests.controller.site import COI, DEMO, Controller, env, owner, wait_until

pytestmark = pytest.mark.postgresql

LINE = """name = "rehearsal"

[equipment.scanner]
adapter = "sim"
[equipment.bioreactor]
adapter = "sim"
[equipment.counter]
adapter = "sim"

[simulation]
line_per_run = true
"""

GATED = '''"""A rehearsal batch whose one step waits, in real time, until a file exists."""

from __future__ import annotations

import time
from pathlib import Path

import anyio.to_thread

from cellauto import Field, Params, Protocol, Run
from cellauto.instruments import BarcodeScanner


class GatedParams(Params):
    gate: str = Field(description="the file whose existence ends the step")


protocol = Protocol("gated-rehearsal", version="1.0.0", params=GatedParams)


@protocol.step(unit_procedure="Wait", resume="rerun", expected_duration_h=0.1)
async def wait_for_the_gate(run: Run[GatedParams], scanner: BarcodeScanner) -> None:
    """Wait until the test opens the gate (checked every 50 ms of real time)."""
    while not Path(run.params.gate).exists():
        await anyio.to_thread.run_sync(time.sleep, 0.05)
'''


def _queue(url: str, protocol: Path, *args: str) -> str:
    """``cellauto run PROTOCOL --queue`` for line rehearsal; the run id."""
    command = [sys.executable, "-m", "cellauto", "run", str(protocol), "--queue", "--db", url]
    command += ["--line-name", "rehearsal", *args]
    done = subprocess.run(command, capture_output=True, text=True, env=env(), check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()[0].removeprefix("run ")


def _started(url: str, run_id: str) -> rec.RunStarted:
    with Journal(url, create=False) as journal:
        first = journal.records(run_id, {RecordKind.RUN_STARTED})[0].payload
    assert isinstance(first, rec.RunStarted)
    return first


def test_a_controller_carries_three_queued_batches_at_once_each_on_its_own_line(
    pg_location: Location, tmp_path: Path
) -> None:
    url = pg_location.describe()
    SiteStore(url, create=True).close()
    line = tmp_path / "rehearsal.toml"
    line.write_text(LINE)
    with Controller(url, line, "alpha", tmp_path) as alpha:
        alpha.wait_for("controller alpha of line rehearsal")
        params = ["--param", f"coi={COI}", "--param", "culture_days=3"]
        runs = [
            _queue(url, DEMO, *params, "--seed", "1"),
            _queue(url, DEMO, *params, "--seed", "2"),
            _queue(url, DEMO, *params),  # no seed: one drawn from its run id
        ]
        for run_id in runs:
            alpha.wait_for(f"run {run_id} ended Complete", timeout_s=120.0)
        assert alpha.stop() == 0
    started = [_started(url, run_id) for run_id in runs]
    assert [s.seed for s in started] == [1, 2, seed_for_run(runs[2], None)]
    assert all(s.simulated and s.line == "rehearsal" for s in started)
    assert all(s.simulation is not None and s.simulation.patient for s in started)
    with Journal(url, create=False) as journal:
        spans = []
        for run_id in runs:
            records = journal.records(run_id)
            spans.append((records[0].process_time_s, records[-1].process_time_s))
            assert verify_run(journal, run_id).intact
    # carried at once: every run had started before the first ended (days of process time)
    assert max(start for start, _ in spans) < min(end for _, end in spans)


def test_a_run_on_its_own_world_is_held_not_resumed_when_its_controller_dies(
    pg_location: Location, tmp_path: Path
) -> None:
    url = pg_location.describe()
    SiteStore(url, create=True).close()
    line = tmp_path / "rehearsal.toml"
    line.write_text(LINE)
    folder = tmp_path / "protocols"
    folder.mkdir()
    gated = folder / "gated_rehearsal.py"
    gated.write_text(GATED)
    gate = tmp_path / "gate"
    with Controller(url, line, "alpha", tmp_path) as alpha:
        alpha.wait_for("controller alpha of line rehearsal")
        run_id = _queue(url, gated, "--param", f"gate={gate}", "--seed", "11")
        alpha.wait_for(f"run {run_id} started")

        def in_its_step() -> bool:
            with Journal(url, create=False) as journal:
                return bool(journal.records(run_id, {RecordKind.STEP_STARTED}))

        wait_until(in_its_step, 60.0, f"run {run_id} to begin its step")
        with Controller(url, line, "beta", tmp_path) as beta:
            beta.wait_for("controller beta of line rehearsal")
            alpha.kill()
            beta.wait_for(f"run {run_id} held: instruments scanner (", timeout_s=90.0)
            gate.touch()  # were the run driven anywhere, its step would end now
            assert beta.stop() == 0
            said = beta.output()
    assert "simulated in its controller's process" in said
    assert "ended with it, and no controller can take it over" in said
    assert f"run {run_id} taken over" not in said
    assert owner(url, run_id) == ("beta", 2)
    with Journal(url, create=False) as journal:
        payloads = [r.payload for r in journal.records(run_id)]
        assert verify_run(journal, run_id).intact
    [alarm] = [p for p in payloads if isinstance(p, rec.Alarm)]
    assert alarm.source == "controller beta" and alarm.severity == "critical"
    assert "were reachable only from controller alpha, which is gone" in alarm.message
    states = [(p.from_state, p.to_state) for p in payloads if isinstance(p, rec.StateChange)]
    assert states[-2:] == [("Running", "Holding"), ("Holding", "Held")]
    # nothing was driven after beta's claim: the step was begun once, never again
    assert sum(isinstance(p, rec.StepStarted) for p in payloads) == 1
    assert not any(isinstance(p, rec.RunEnded) for p in payloads)
