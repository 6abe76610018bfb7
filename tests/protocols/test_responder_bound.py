"""An unattended Restart policy gives one hold a bounded number of restarts, then stops.

A cause that no restart clears (the crash drill once met a lot missing from the journal)
must not make an unattended line journal Hold -> Restart -> Hold without end: the same
step held for the same cause is restarted MAX_AUTOMATIC_RESTARTS times, then the run is
stopped with a critical alarm and a Stop whose reason says why. Process time passes
between the holds here (the step works a while before it finds its cause again), as on a
line whose clock runs on: the bound must not depend on time standing still.
"""

from __future__ import annotations

from itertools import pairwise

import anyio
import pytest

from cellauto import Protocol, Run
from cellauto.protocols.responder import MAX_AUTOMATIC_RESTARTS
from cellauto.records import payloads as rec
from cellauto.records.spec import Spec
from cellauto.sim.simulate import SimulatedRun, simulate_async

pytestmark = pytest.mark.anyio

FAKE_CAUSE = "fake: gasket torque out of range"
LIMIT_S = 30 * 24 * 3600.0
"""Virtual seconds after which the run counts as looping (fail_after: no hang)."""


def always_holding(*, clears_after: int | None = None) -> Protocol:
    """One step that works 10 min, then holds on a fake cause (check 'gasket torque'),
    every time it runs (or until it ran ``clears_after`` times); then a last step."""
    protocol = Protocol("always-holding", version="1")
    attempts = 0

    @protocol.step
    async def tighten(run: Run) -> None:
        nonlocal attempts
        while True:
            attempts += 1
            await run.sleep(minutes=10)
            torque = 5.0 if clears_after is None or attempts <= clears_after else 1.0
            if run.check("gasket torque", torque, Spec(max=2.0, unit="N m")).passed:
                return
            await run.hold_point()

    @protocol.step
    async def finish(run: Run) -> None:
        await run.sleep(minutes=1)

    return protocol


async def _simulate(protocol: Protocol) -> SimulatedRun:
    with anyio.fail_after(LIMIT_S):
        return await simulate_async(protocol, on_hold="restart", patient="typical")


async def test_the_same_hold_is_restarted_a_bounded_number_of_times_then_stopped() -> None:
    run = await _simulate(always_holding())
    assert run.exit_status == "stopped", run.outcome.reason
    accepted = [c for c in run.of_kind(rec.Command) if c.accepted]
    restarts = [c for c in accepted if c.command == "Restart"]
    assert len(restarts) == MAX_AUTOMATIC_RESTARTS == 3
    stop = accepted[-1]
    assert stop.command == "Stop" and stop.by == "simulate(on_hold='restart')"
    assert "held 4 times at step 'tighten' for the same cause after 3 automatic restarts" in (
        stop.reason
    )
    assert "gasket torque" in stop.reason and "start a new run" in stop.reason
    alarms = [a for a in run.of_kind(rec.Alarm) if a.severity == "critical"]
    assert any(a.message == stop.reason and a.source == "tighten" for a in alarms)
    held = [s for s in run.of_kind(rec.StateChange) if s.to_state == "Held"]
    assert len(held) == 4
    # process time passed between the holds: 10 min of work before each
    times = [r.process_time_s for r in run.records if r.kind == "deviation"]
    assert len(times) == 4 and all(b - a >= 600 for a, b in pairwise(times))


async def test_a_hold_that_a_restart_clears_is_restarted_and_the_run_completes() -> None:
    run = await _simulate(always_holding(clears_after=MAX_AUTOMATIC_RESTARTS))
    assert run.exit_status == "complete", run.outcome.reason
    restarts = [c for c in run.of_kind(rec.Command) if c.accepted and c.command == "Restart"]
    assert len(restarts) == MAX_AUTOMATIC_RESTARTS
