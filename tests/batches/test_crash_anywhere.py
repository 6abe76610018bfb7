"""Every shipped protocol survives a controller crash anywhere in it.

For each protocol, an uninterrupted simulated batch gives the steps' times; then the
controller is killed halfway through each step, and a second after each physical
action completed, and the run resumed (an operator answering Restart where a step
asks for one). The batch must complete, and no physical
action may be done more often than in the uninterrupted batch.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from cellauto.records import payloads as rec
from cellauto.sim import SimulatedRun, simulate

PROTOCOLS = Path(__file__).resolve().parents[2] / "protocols"
SEED = 3
#: Commands that act on material or start a process: never twice for one intent.
PHYSICAL = {"seed", "add_reagent", "feed", "harvest", "start", "store"}


def _physical_actions(run: SimulatedRun) -> Counter[str]:
    """Physical actions carried out (a command whose reply says so) and programs started.

    A command cut short by the crash is in doubt; the simulated instrument, running in
    the controller's process, dies with it without acting, so counting the commands
    that completed counts what was done to the material.
    """
    actions: Counter[str] = Counter()
    for response in run.of_kind(rec.InstrumentResponse):
        if response.ok and response.method in PHYSICAL:
            actions[f"{response.instrument}.{response.method}"] += 1
    programs = {
        c.arguments["supervisory_task_id"]
        for c in run.of_kind(rec.InstrumentCommand)
        if c.method == "start_program"
    }
    actions["programs"] = len(programs)
    return actions


def _step_midpoints(run: SimulatedRun) -> list[tuple[str | None, float]]:
    t0 = run.records[0].process_time_s
    started: dict[str, float] = {}
    middles: list[tuple[str | None, float]] = []
    for record in run.records:
        if record.kind == "step_started":
            started[record.payload.step] = record.process_time_s
        elif record.kind == "step_completed":
            begin = started[record.payload.step]
            if record.process_time_s - begin >= 120:  # long enough to crash inside
                middles.append(
                    (record.payload.step, ((begin + record.process_time_s) / 2 - t0) / 3600)
                )
    return middles


def _just_after_each_action(run: SimulatedRun) -> list[tuple[str | None, float]]:
    """A second after each physical action completed: done, but not yet followed up
    (the step may have ended meanwhile: which step is interrupted is not asserted)."""
    t0 = run.records[0].process_time_s
    return [
        (None, (r.process_time_s + 1.0 - t0) / 3600)
        for r in run.records
        if r.kind == "instrument_response"
        and r.payload.ok
        and r.payload.method in PHYSICAL | {"start_program"}
    ]


def _cases() -> list[tuple[str, str | None, float]]:
    cases: list[tuple[str, str | None, float]] = []
    for name in ("car_t_autologous.py", "nk_expansion.py", "demo_expansion.py"):
        baseline = simulate(PROTOCOLS / name, seed=SEED, patient="typical")
        moments = [*_step_midpoints(baseline), *_just_after_each_action(baseline)]
        cases += [(name, step, at_h) for step, at_h in sorted(moments, key=lambda m: m[1])]
    return cases


@pytest.mark.parametrize(("protocol", "step", "at_h"), _cases())
def test_a_crash_in_the_middle_of_any_step_or_after_any_action_is_survived(
    protocol: str, step: str | None, at_h: float
) -> None:
    baseline = simulate(PROTOCOLS / protocol, seed=SEED, patient="typical")
    run = simulate(
        PROTOCOLS / protocol,
        seed=SEED,
        crashes=[at_h],
        downtime_h=1,
        on_hold="restart",
        patient="typical",
    )
    assert run.exit_status == "complete", run.outcome.reason
    resumed = [r.interrupted_step for r in run.of_kind(rec.RunResumed)]
    if step is not None:  # halfway through a step
        assert resumed == [step]
    assert _physical_actions(run) == _physical_actions(baseline)
