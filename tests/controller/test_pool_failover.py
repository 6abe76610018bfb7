"""Many batches at once on a pool of bioreactors, and a controller killed among them.

``cellauto sim serve`` serves the demo line with a pool of bioreactor units (one served
OPC UA bioreactor each), as many labelled bags, and a counter the controllers share
(``shared``). Controllers (real processes, one PostgreSQL journal) take the queued
batches, each bound to a free unit; one holding batches is SIGKILLed at a seeded random
moment (``$CELLAUTO_KILL_SEED``, printed). Checked for every batch: it ends Complete
exactly once and verifies; it ran on one unit from start to end (its resumes name the
instrument it started with); that unit's once-only actions were done once and nothing
was done without its journaled intent; its unit is free again at the end; and the whole
journal passes ``cellauto verify``. A pool of one unit keeps a second batch queued (not
refused) until the first ends.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from cellauto.records import Journal, verify_run
from cellauto.records import asset_holds as table
from cellauto.records import backend as db
from cellauto.records.backend import Location
from cellauto.records.material_payloads import EquipmentChecked
from cellauto.records.payloads import (
    ControllerClaimed,
    InstrumentCommand,
    RunEnded,
    RunResumed,
    RunStarted,
)
from cellauto.records.site_store import SiteStore
from cellauto.sim.action_log import read_actions
from tests.controller.site import (
    Controller,
    env,
    kill_after,
    kill_rng,
    owner,
    served_demo_line,
    submit,
    wait_until,
)

pytestmark = pytest.mark.postgresql

SPEED = 36_000.0
ONCE = ("seed", "add_reagent")
"""What a demo batch does exactly once to its bioreactor, whatever the kills."""


def _ended(url: str, run_ids: list[str]) -> bool:
    conn = db.open_backend(url).connect(create=False, timeout_s=5.0)
    try:
        marks = ", ".join("?" for _ in run_ids)
        (count,) = conn.execute(
            f"SELECT count(*) FROM records WHERE kind = 'run_ended' AND run_id IN ({marks})",
            tuple(run_ids),
        ).fetchone()
    finally:
        conn.close()
    return int(count) == len(run_ids)


def _units(url: str) -> list[table.HoldRow]:
    conn = db.open_backend(url).connect(create=False, timeout_s=5.0)
    try:
        return [row for row in table.holds(conn) if row.asset.startswith("BR-")]
    finally:
        conn.close()


def _audit(url: str, run_ids: list[str], actions: Path) -> dict[str, str]:
    """Every batch checked (module doc); run id -> its unit."""
    units = {row.run_id: row.asset for row in _units(url)}
    assert sorted(units) == sorted(run_ids), units
    assert all(row.status == "released" for row in _units(url))  # every unit free again
    done = Counter((a.instrument, a.method) for a in read_actions(actions) if a.repeat_of is None)
    intents: Counter[tuple[str, str]] = Counter()
    with Journal(url, create=False) as journal:
        for run_id in run_ids:
            records = journal.records(run_id)
            report = verify_run(journal, run_id)
            assert report.intact and report.sealed, report
            ended = [r.payload for r in records if isinstance(r.payload, RunEnded)]
            assert [e.final_state for e in ended] == ["Complete"], (run_id, ended)
            epochs = [r.payload.epoch for r in records if isinstance(r.payload, ControllerClaimed)]
            assert epochs == sorted(set(epochs)), epochs
            unit = units[run_id]
            started = records[0].payload
            assert isinstance(started, RunStarted)
            serials = [started.instruments["bioreactor"].serial] + [
                r.payload.instruments["bioreactor"].serial
                for r in records
                if isinstance(r.payload, RunResumed)
            ]
            assert set(serials) == {f"B-{unit}"}, (run_id, serials)  # one unit, its life long
            checked = {
                (r.payload.asset, r.payload.serial_read)
                for r in records
                if isinstance(r.payload, EquipmentChecked) and r.payload.equipment == "bioreactor"
            }
            assert checked == {(unit, f"B-{unit}")}, (run_id, checked)  # the unit's tag
            for r in records:
                if isinstance(r.payload, InstrumentCommand):
                    name = r.payload.instrument
                    key = f"bioreactor@{unit}" if name == "bioreactor" else name
                    intents[(key, r.payload.method)] += 1
            for method in ONCE:
                assert done[(f"bioreactor@{unit}", method)] == 1, (unit, method, done)
    for key, n in done.items():
        assert n <= intents[key], f"{key}: done {n} times, journaled {intents[key]}"
    verified = subprocess.run(
        [sys.executable, "-m", "cellauto", "verify", "--db", url],
        capture_output=True,
        text=True,
        env=env(),
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    return units


def _batches_with_kills(
    pg_location: Location, tmp_path: Path, *, controllers: int, batches: int, kills: int
) -> None:
    rng = kill_rng()
    url = pg_location.describe()
    SiteStore(url, create=True).close()
    began = time.monotonic()
    with served_demo_line(tmp_path, speed=SPEED, units=batches) as (line, actions):
        names = ["alpha", "beta", "gamma"][:controllers]
        every = {name: Controller(url, line, name, tmp_path, capacity=batches) for name in names}
        try:
            for controller in every.values():
                controller.wait_for(f"controller {controller.name} of line")
            days = 3 + 2 * (kills - 1)  # long enough for every kill
            runs = [submit(url, f"culture_days={days}", batch=n) for n in range(1, batches + 1)]
            killed: list[str] = []
            for _ in range(kills):
                holders = wait_until(
                    lambda: (
                        all(owner(url, r) for r in runs)
                        and sorted(
                            {o[0] for r in runs if (o := owner(url, r)) and o[0] not in killed}
                        )
                    ),
                    60.0,
                    "every batch claimed by a live controller",
                )
                victim = rng.choice(holders)
                kill_after(every[victim], rng.uniform(0.5, 3.0))
                print(f"killed {victim} holding {holders}")
                killed.append(victim)
            wait_until(lambda: _ended(url, runs), 240.0, "every batch to end")
            for name, controller in every.items():
                if name not in killed:
                    assert controller.stop() == 0, controller.output()[-3000:]
        finally:
            for controller in every.values():
                controller.__exit__()
    units = _audit(url, runs, actions)
    assert len(set(units.values())) == batches  # at once: each on a unit of its own
    print(f"{batches} batches, {controllers} controllers, {kills} kills: "
          f"{time.monotonic() - began:.1f} s")  # fmt: skip


def test_four_batches_on_a_pool_survive_a_killed_controller(
    pg_location: Location, tmp_path: Path
) -> None:
    _batches_with_kills(pg_location, tmp_path, controllers=2, batches=4, kills=1)


def test_four_batches_on_a_pool_three_controllers_two_kills(
    pg_location: Location, tmp_path: Path
) -> None:
    _batches_with_kills(pg_location, tmp_path, controllers=3, batches=4, kills=2)


def test_a_batch_without_a_free_unit_stays_queued_until_one_is_free(
    pg_location: Location, tmp_path: Path
) -> None:
    """Also the limit of a unit used again: nothing says whether it was emptied. The
    demo leaves its culture in the bag, so the next batch's seed is refused by the
    bioreactor and that batch is aborted (the patient's bag untouched), its unit freed."""
    url = pg_location.describe()
    SiteStore(url, create=True).close()
    with served_demo_line(tmp_path, speed=SPEED, units=1) as (line, _):
        with Controller(url, line, "alpha", tmp_path) as alpha:
            alpha.wait_for("controller alpha of line")
            first = submit(url, "culture_days=3")
            alpha.wait_for(f"run {first} started")
            second = submit(url, "culture_days=3")
            alpha.wait_for(f"run {first} ended Complete", 120.0)
            alpha.wait_for(f"run {second} started", 60.0)
            alpha.wait_for(f"run {second} ended", 60.0)
            assert alpha.stop() == 0
        log = alpha.output()
        assert log.index(f"run {first} ended") < log.index(f"run {second} started")
        assert f"run {second} refused" not in log
        assert (
            f"run {second} ended Aborted: InstrumentError: Bioreactor B-BR-01: the bag is "
            "already seeded; harvest it first" in log
        )
    holds = _units(url)
    assert [(h.run_id, h.asset, h.status) for h in holds] == [
        (first, "BR-01", "released"),
        (second, "BR-01", "released"),  # the unit, free again, went to the queued batch
    ]
