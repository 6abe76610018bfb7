"""The NK protocol asks people where a real process has them: connecting the product bag,
scanning the printed label back, a two-person label check before freezing, loading the
freezer, the transfer into LN2 (each hand-off a scan of the bag)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cellauto.records import payloads as rec
from cellauto.records.refs import Meaning
from cellauto.sim import SimulatedRun
from cellauto.sim.operators import Answer, Silent

NK = Path(__file__).resolve().parents[2] / "protocols" / "nk_expansion.py"
#: NK 1.3.0 fills two 50 mL bags: each is labelled, loaded and carried into LN2.
TASKS = [
    "connect NK cell product bag",
    "scan the printed label",
    "scan the printed label",
    "final product label",
    "load the freezer",
    "load the freezer",
    "transfer into LN2",
    "transfer into LN2",
]


def test_nk_batch_signs_its_manual_acts(cellauto_sim: Callable[..., SimulatedRun]) -> None:
    run = cellauto_sim(NK, seed=2, patient="typical")
    assert run.exit_status == "complete", run.outcome.reason
    assert [t.name for t in run.tasks] == TASKS
    steps = [t.step for t in run.tasks]
    assert steps == ["seed_and_stimulate", *["check_label"] * 3, *["freeze_and_store"] * 4]
    label = next(c for c in run.identity_checks if c.check == "final product label")
    assert label.passed
    assert all(c.passed for c in run.identity_checks)
    assert [c.check for c in run.identity_checks if c.check.startswith("hand-off")] == [
        "hand-off: NK cell product to bioreactor",
        "hand-off: NK final product 1 to freezer",
        "hand-off: NK final product 2 to freezer",
        "hand-off: NK final product 1 to storage rack B box 1 slot 1",
        "hand-off: NK final product 2 to storage rack B box 1 slot 2",
    ]
    verified = [s for s in run.signatures if s.meaning is Meaning.VERIFIED]
    assert len(verified) == 3  # the label and each transfer, each by a second person
    assert all(s.signer == "sim:operator-b" for s in verified)


def test_wrong_label_read_aborts_before_freezing(cellauto_sim: Callable[..., SimulatedRun]) -> None:
    run = cellauto_sim(
        NK,
        seed=2,
        operators={"final product label": Answer(value="N000000000000")},
        patient="typical",
    )
    assert run.exit_status == "aborted"
    assert not any(c.method == "run_profile" for c in run.of_kind(rec.InstrumentCommand))
    assert "final product label mismatch" in run.outcome.reason


def test_label_not_read_within_half_an_hour_holds_the_batch(
    cellauto_sim: Callable[..., SimulatedRun],
) -> None:
    run = cellauto_sim(NK, seed=2, operators={"final product label": Silent()}, patient="typical")
    assert run.exit_status == "stopped"  # held, answered by on_hold="stop"
    assert [d.check for d in run.deviations] == ["final product label: no answer within 0.5 h"]
    assert [w.task_id for w in run.of_kind(rec.TaskWithdrawn)] == [
        run.task("final product label").task_id
    ]


def test_controller_killed_while_the_label_task_is_open(
    cellauto_sim: Callable[..., SimulatedRun],
) -> None:
    baseline = cellauto_sim(NK, seed=2, patient="typical")
    opened = next(
        r
        for r in baseline.records
        if isinstance(r.payload, rec.TaskOpened) and r.payload.name == "final product label"
    )
    crash_h = (opened.process_time_s + 120 - baseline.records[0].process_time_s) / 3600
    run = cellauto_sim(NK, seed=2, crashes=[crash_h], downtime_h=0.1, patient="typical")
    assert run.exit_status == "complete", run.outcome.reason
    assert len(run.of_kind(rec.RunResumed)) == 1
    assert [t.name for t in run.tasks] == TASKS  # each asked once: the open one re-offered
    assert len(run.of_kind(rec.TaskAnswered)) == len(TASKS)
    assert not run.deviations
    # down for longer than the task's half hour: its timeout applies on resume
    late = cellauto_sim(NK, seed=2, crashes=[crash_h], downtime_h=1.0, patient="typical")
    assert [d.check for d in late.deviations] == ["final product label: no answer within 0.5 h"]
    assert late.exit_status == "stopped"
