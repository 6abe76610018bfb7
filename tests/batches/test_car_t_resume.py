"""The CAR-T batch survives controller crashes: resumed, nothing done twice, same product."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from cellauto.records import Journal, verify_run
from cellauto.records import payloads as rec
from cellauto.sim import SimulatedRun

CAR_T = Path(__file__).resolve().parents[2] / "protocols" / "car_t_autologous.py"
Sim = Callable[..., SimulatedRun]
SEED = 3


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> SimulatedRun:
    from cellauto.sim import simulate

    return simulate(
        CAR_T, seed=SEED, db=tmp_path_factory.mktemp("car-t") / "j.db", patient="typical"
    )


def _commands(run: SimulatedRun, method: str) -> list[dict]:
    return [c for c in run.of_kind(rec.InstrumentCommand) if c.method == method]


@pytest.mark.parametrize(
    ("crashes", "interrupted"),
    [
        ([2.0], ["enrich_cd4_cd8"]),  # reconcile: the processor's program is re-attached
        ([15.0], ["transduce"]),  # operator: held, restarted, the vector added once
        ([102.0], ["expand"]),  # reconcile: days done are not repeated, nor a feed
        ([225.0], ["freeze"]),  # reconcile: the running freeze is followed, not restarted
        ([15.0, 100.0, 225.0], ["transduce", "expand", "freeze"]),
    ],
)
def test_the_batch_completes_after_controller_crashes_with_the_same_product(
    cellauto_sim: Sim, uninterrupted: SimulatedRun, crashes: list[float], interrupted: list[str]
) -> None:
    run = cellauto_sim(
        CAR_T, seed=SEED, crashes=crashes, downtime_h=2, on_hold="restart", patient="typical"
    )
    assert run.exit_status == "complete", run.outcome.reason
    resumed = run.of_kind(rec.RunResumed)
    assert [r.interrupted_step for r in resumed] == interrupted
    # no physical action twice: each bag fed at most once a day, the vector and the
    # activator added once, one freeze, the program of each step started once
    feed_days = [c.name for c in run.of_kind(rec.Checkpoint) if c.name.endswith(": done")]
    feed_days = [name for name in feed_days if name.startswith("feed day")]
    assert (
        len(_commands(run, "feed")) == len(set(feed_days)) == len(_commands(uninterrupted, "feed"))
    )
    assert len(_commands(run, "add_reagent")) == 2
    assert len(_commands(run, "start")) == 1  # the freezer
    programs = {c.arguments["supervisory_task_id"] for c in _commands(run, "start_program")}
    assert len(programs) == 3  # enrich, wash, formulate: re-attached, never restarted
    # the same product, within the noise of the extra QC samples a resumed step draws
    for name in ("fold expansion", "dose", "infusion volume"):
        assert run.values[name] == pytest.approx(uninterrupted.values[name], rel=0.03), name
    assert run.values["dose"] / run.values["target dose"] == pytest.approx(1.0, abs=0.2)
    with Journal(run.journal_path, create=False) as journal:
        report = verify_run(journal, run.outcome.run_id)
    assert report.intact and report.sealed and report.ended
