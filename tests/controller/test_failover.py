"""Kill a controller: a survivor takes its batch over and the batch completes once.

Real controller processes (``cellauto controller``) on one PostgreSQL journal, the demo
line's instruments served apart by ``cellauto sim serve`` (which logs every physical
action). A controller holding a batch is SIGKILLed at a seeded random moment
(``$CELLAUTO_KILL_SEED``, printed); a survivor sees its presence lock free, waits the
grace, marks it lost, takes the run over (a claim with the next epoch) and resumes it
with the existing resume logic. Checked: the batch ends Complete exactly once; every
physical action has its journaled intent and the once-only ones were done once; the
claims' epochs increase; the run verifies (chain, ledger, seal).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from cellauto.records import Journal, RecordKind, verify_run
from cellauto.records import backend as db
from cellauto.records.backend import Location
from cellauto.records.payloads import ControllerClaimed, InstrumentCommand, RunEnded
from cellauto.records.site_store import SiteStore
from cellauto.sim.action_log import read_actions
from tests.controller.site import (
    Controller,
    kill_after,
    kill_rng,
    owner,
    served_demo_line,
    submit,
    wait_until,
)

pytestmark = pytest.mark.postgresql

SPEED = 36_000.0
ONCE = {("bioreactor", "seed"), ("bioreactor", "add_reagent")}
"""Physical actions the demo batch does exactly once, whatever the kills."""


def _audit(url: str, run_id: str, actions: Path) -> None:
    with Journal(url, create=False) as journal:
        records = journal.records(run_id)
        report = verify_run(journal, run_id)
    assert report.intact and report.sealed, report
    ended = [r.payload for r in records if isinstance(r.payload, RunEnded)]
    assert [e.final_state for e in ended] == ["Complete"], ended
    assert records[-1].kind == RecordKind.RUN_ENDED
    epochs = [r.payload.epoch for r in records if isinstance(r.payload, ControllerClaimed)]
    assert epochs == sorted(set(epochs)) and len(epochs) >= 2, epochs
    assert [r.seq for r in records] == list(range(len(records)))
    intents = Counter(
        (r.payload.instrument, r.payload.method)
        for r in records
        if isinstance(r.payload, InstrumentCommand)
    )
    done = Counter((a.instrument, a.method) for a in read_actions(actions) if a.repeat_of is None)
    for key, n in done.items():
        assert n <= intents[key], f"{key}: done {n} times, journaled {intents[key]}"
    for key in ONCE:
        assert done[key] == 1, f"{key}: done {done[key]} times"


def _claims_by(url: str, run_id: str) -> list[str]:
    conn = db.open_backend(url).connect(create=False, timeout_s=5.0)
    try:
        row = conn.execute("SELECT status FROM run_queue WHERE run_id = ?", (run_id,))
        assert row.fetchone()[0] == "started"
        lost = conn.execute("SELECT name FROM controllers WHERE status = 'lost' ORDER BY name")
        return [str(name) for (name,) in lost.fetchall()]
    finally:
        conn.close()


def test_a_survivor_takes_over_the_batch_of_a_killed_controller(
    pg_location: Location, tmp_path: Path
) -> None:
    rng = kill_rng()
    url = pg_location.describe()
    SiteStore(url, create=True).close()
    with served_demo_line(tmp_path, speed=SPEED) as (line, actions):
        with (
            Controller(url, line, "alpha", tmp_path) as alpha,
            Controller(url, line, "beta", tmp_path) as beta,
        ):
            alpha.wait_for("controller alpha of line")
            beta.wait_for("controller beta of line")
            run_id = submit(url, "culture_days=3")
            first, _ = wait_until(lambda: owner(url, run_id), 60.0, "the run's claim")
            victim, survivor = (alpha, beta) if first == "alpha" else (beta, alpha)
            kill_after(victim, rng.uniform(0.5, 6.0))
            survivor.wait_for(f"run {run_id} taken over from controller {victim.name}")
            survivor.wait_for(f"run {run_id} ended Complete", 120.0)
            assert survivor.stop() == 0
        assert _claims_by(url, run_id) == [victim.name]
        assert owner(url, run_id) == (survivor.name, 2)
    _audit(url, run_id, actions)


def test_three_controllers_two_kills_the_batch_completes_once(
    pg_location: Location, tmp_path: Path
) -> None:
    rng = kill_rng()
    url = pg_location.describe()
    SiteStore(url, create=True).close()
    with served_demo_line(tmp_path, speed=SPEED) as (line, actions):
        with (
            Controller(url, line, "alpha", tmp_path) as alpha,
            Controller(url, line, "beta", tmp_path) as beta,
            Controller(url, line, "gamma", tmp_path) as gamma,
        ):
            every = {c.name: c for c in (alpha, beta, gamma)}
            for controller in every.values():
                controller.wait_for(f"controller {controller.name} of line")
            run_id = submit(url, "culture_days=7")  # long enough for two kills
            killed: list[str] = []
            epoch = 0
            for _ in range(2):
                holder, epoch = wait_until(
                    lambda e=epoch: (o := owner(url, run_id)) and o[1] > e and o,
                    60.0,
                    "the run's next claim",
                )
                kill_after(every[holder], rng.uniform(0.5, 2.5))
                killed.append(holder)
            last = wait_until(
                lambda: (o := owner(url, run_id)) and o[1] > epoch and o, 60.0, "a third claim"
            )
            final = every[last[0]]
            final.wait_for(f"run {run_id} ended Complete", 120.0)
            for controller in every.values():
                if controller.name not in killed:
                    assert controller.stop() == 0
        assert _claims_by(url, run_id) == sorted(killed)
    _audit(url, run_id, actions)


def test_a_controller_stopped_by_sigterm_leaves_its_batch_to_a_peer_at_once(
    pg_location: Location, tmp_path: Path
) -> None:
    url = pg_location.describe()
    SiteStore(url, create=True).close()
    with served_demo_line(tmp_path, speed=SPEED) as (line, actions):
        with (
            # a grace no test waits out: the hand-over must not wait for it
            Controller(url, line, "alpha", tmp_path, "--grace-s", "600") as alpha,
            Controller(url, line, "beta", tmp_path, "--grace-s", "600") as beta,
        ):
            alpha.wait_for("controller alpha of line")
            beta.wait_for("controller beta of line")
            run_id = submit(url, "culture_days=3")
            first, _ = wait_until(lambda: owner(url, run_id), 60.0, "the run's claim")
            leaving, staying = (alpha, beta) if first == "alpha" else (beta, alpha)
            leaving.wait_for(f"run {run_id} started")
            assert leaving.stop() == 0
            staying.wait_for(f"run {run_id} taken over from controller {leaving.name}", 60.0)
            staying.wait_for(f"run {run_id} ended Complete", 120.0)
            assert staying.stop() == 0
        assert owner(url, run_id) == (staying.name, 2)
    _audit(url, run_id, actions)


def test_a_controller_started_again_takes_back_the_batch_of_its_earlier_life(
    pg_location: Location, tmp_path: Path
) -> None:
    url = pg_location.describe()
    SiteStore(url, create=True).close()
    with served_demo_line(tmp_path, speed=SPEED) as (line, actions):
        with Controller(url, line, "alpha", tmp_path) as alpha:
            alpha.wait_for("controller alpha of line")
            run_id = submit(url, "culture_days=3")
            alpha.wait_for(f"run {run_id} started")
            alpha.kill()
        # alone on the site, as systemd's Restart=on-failure starts it again
        with Controller(url, line, "alpha", tmp_path) as again:
            again.wait_for(f"run {run_id} taken over from controller alpha")
            again.wait_for(f"run {run_id} ended Complete", 120.0)
            assert again.stop() == 0
        assert owner(url, run_id) == ("alpha", 2)
    _audit(url, run_id, actions)
