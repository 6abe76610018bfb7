"""End to end: ``cellauto run ... --sim --operators people`` in a subprocess, answered by
two accounts with ``cellauto answer`` from this process (another terminal), completes,
and ``show`` lists both signatures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

from tests.cli.across import staff, task_rows
from tests.cli.people import People, own, people

__all__ = ["people"]  # fixture

PROTOCOL = '''
from cellauto import Protocol, Run, Spec

protocol = Protocol("people", version="1")


@protocol.step
async def connect(run: Run) -> None:
    """Connect the bag."""
    await run.confirm("connect bag", instruction="Weld the bag to the set.")


@protocol.step
async def weigh(run: Run) -> None:
    """Weigh the bag, a second person verifies."""
    await run.enter(
        "bag weight", type=float, unit="g", spec=Spec(min=70, max=90, unit="g"),
        instruction="Weigh the bag.", verify=True,
    )
'''


def _next_open(people: People, answered: set[tuple[str, str]]) -> dict[str, str] | None:
    listed = people("tasks", "--json")
    assert listed.code == 0, listed.err
    for task in orjson.loads(listed.out):
        if (task["task_id"], task["phase"]) not in answered:
            return dict(task)
    return None


def test_a_simulated_run_answered_by_two_people(people: People, tmp_path: Path) -> None:
    staff(people)
    source = tmp_path / "people_protocol.py"
    source.write_text(PROTOCOL, encoding="utf-8")
    controller = subprocess.Popen(
        [sys.executable, "-m", "cellauto", "run", str(source), "--sim", "--seed", "1",
         "--operators", "people", "--on-hold", "stop", "--db", str(people.db)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
    )  # fmt: skip
    answered: set[tuple[str, str]] = set()
    try:
        while len(answered) < 3:
            assert controller.poll() is None, controller.communicate()
            task = _next_open(people, answered)
            if task is None:
                continue
            who = "bob" if task["phase"] == "verify" else "alice"
            value = ("--value", "80.5") if task["name"] == "bag weight" else ()
            given = people(
                "answer", task["task_id"], "--as", who, *value, "--wait-s", "60",
                stdin=[own(who)],
            )  # fmt: skip
            assert given.code == 0, given.err
            assert "taken up by the run's controller" in given.out
            answered.add((task["task_id"], task["phase"]))
        out, err = controller.communicate(timeout=120)
    finally:
        if controller.poll() is None:
            controller.kill()
            controller.wait()
    assert controller.returncode == 0, err
    run_id = out.splitlines()[0].split()[1]
    assert "ended Complete (complete)" in out
    shown = people("show", run_id)
    assert shown.code == 0, shown.err
    assert "alice" in shown.out and "bob" in shown.out
    assert task_rows(people.db) == []
    verified = people("verify")
    assert verified.code == 0, verified.out + verified.err
    assert "site:" in verified.out
