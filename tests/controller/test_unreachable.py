"""A run whose instruments no surviving controller reaches: held, alarmed, handed over.

Controller alpha drives the demo batch on the full line; beta's line lacks the
bioreactor. alpha is killed: beta, the lowest-named survivor, claims the run anyway,
raises a critical alarm naming the bioreactor and holds the run (``Running -> Holding ->
Held``), driving nothing. When gamma, which reaches the bioreactor, registers, beta
appends ``controller_released`` and lets go; gamma takes the run over by its own claim.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cellauto.records import Journal
from cellauto.records.backend import Location
from cellauto.records.payloads import Alarm, ControllerClaimed, ControllerReleased, StateChange
from cellauto.records.site_store import SiteStore
from tests.controller.site import Controller, owner, served_demo_line, submit

pytestmark = pytest.mark.postgresql


def test_a_run_nobody_reaches_is_held_with_an_alarm_and_handed_over_later(
    pg_location: Location, tmp_path: Path
) -> None:
    url = pg_location.describe()
    SiteStore(url, create=True).close()
    with served_demo_line(tmp_path, speed=36_000.0) as (line, _actions):
        partial = line.with_name("site-b.toml")
        with (
            Controller(url, line, "alpha", tmp_path) as alpha,
            Controller(url, partial, "beta", tmp_path) as beta,
        ):
            alpha.wait_for("controller alpha of line")
            beta.wait_for("controller beta of line site-b: 2 instruments")
            run_id = submit(url, "culture_days=7")
            alpha.wait_for(f"run {run_id} started")
            alpha.kill()
            beta.wait_for(f"run {run_id} held: instruments ")
            assert "reachable only from controller alpha" in beta.output()
            assert owner(url, run_id) == ("beta", 2)
            with Controller(url, line, "gamma", tmp_path) as gamma:
                beta.wait_for(f"run {run_id} handed over to controller gamma")
                gamma.wait_for(f"run {run_id} taken over (released by controller beta)")
                assert owner(url, run_id) == ("gamma", 3)
                assert beta.stop() == 0
                assert gamma.stop() == 0
    with Journal(url, create=False) as journal:
        records = journal.records(run_id)
    payloads = [r.payload for r in records]
    claims = [p.epoch for p in payloads if isinstance(p, ControllerClaimed)]
    assert claims == [1, 2, 3]
    [alarm] = [p for p in payloads if isinstance(p, Alarm) and p.source == "controller beta"]
    assert alarm.severity == "critical"
    assert alarm.message.startswith("instruments bioreactor (cellauto-sim/")
    assert "were reachable only from controller alpha, which is gone" in alarm.message
    states = [(p.from_state, p.to_state) for p in payloads if isinstance(p, StateChange)]
    assert ("Running", "Holding") in states and ("Holding", "Held") in states
    [released] = [p for p in payloads if isinstance(p, ControllerReleased)]
    assert (released.controller, released.to_controller, released.epoch) == ("beta", "gamma", 2)
    # gamma resumed a held run: it stays Held until a person restarts it
    assert states[-1][1] == "Held", states
