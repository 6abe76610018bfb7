"""One controller per run, in the runner: a run taken over stops; crashes are recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from cellauto import Protocol, Run
from cellauto.errors import FencedError
from cellauto.instruments import Line
from cellauto.protocols import Runner
from cellauto.protocols.runner import controller_claimed
from cellauto.records import Journal, RecordKind, _owners, verify_run
from cellauto.records import payloads as rec
from cellauto.records.backend import Location
from cellauto.sim import simulate
from tests.protocols.harness import ORIGIN, Valve

DEMO = Path(__file__).resolve().parents[2] / "protocols" / "demo_expansion.py"


@pytest.mark.anyio
async def test_a_run_taken_over_midway_stops_driving_its_instruments(
    db_location: Location, tmp_path: Path
) -> None:
    path = db_location
    protocol = Protocol("pulses", version="1")

    third = anyio.Event()

    @protocol.step
    async def pulse(run: Run, valve: Valve) -> None:
        while True:
            if await valve.open() == 3:
                third.set()

    valve = Valve()
    caught: list[FencedError] = []
    opened_at_takeover: list[int] = []
    with Journal(path, owner_stale_s=3600) as journal:
        execution = Runner(journal, clock_origin=ORIGIN).prepare(
            protocol, Line("test", {"valve": valve})
        )

        async def take_over() -> None:
            await third.wait()
            opened_at_takeover.append(valve.opened)
            # another controller, for which the first one's heartbeat is stale
            with Journal(path, create=False, owner_stale_s=0) as other:
                run = other.resume_run(execution.run_id, execution.clock.now_s)
                claimed = controller_claimed(run, reproducible=False)
                assert claimed is not None
                run.append(claimed)
                run.append(rec.Alarm(source="test", severity="warning", message="took over"))
                run.seal()

        async with anyio.create_task_group() as tg:
            tg.start_soon(take_over)
            try:
                await execution.execute()
            except FencedError as exc:
                caught.append(exc)
        assert caught, "the run went on after it was taken over"
        assert "taken over" in str(caught[0]) and "epoch 2" in str(caught[0])
        # an open whose durable intent was in before the takeover may finish; none after
        assert valve.opened <= opened_at_takeover[0] + 1
        records = journal.records(execution.run_id)
        report = verify_run(journal, execution.run_id)
    assert report.intact and report.sealed
    claims = [r.payload for r in records if isinstance(r.payload, rec.ControllerClaimed)]
    assert [c.epoch for c in claims] == [1, 2]
    assert claims[1].taken_over_from is not None
    assert claims[1].taken_over_from.why == "stale"
    assert isinstance(records[-1].payload, rec.Alarm)  # the new owner's, undisturbed
    intents = [r for r in records if r.kind is RecordKind.INSTRUMENT_COMMAND]
    assert len(intents) <= opened_at_takeover[0] + 1


def test_each_resume_after_a_simulated_crash_takes_the_run_over_with_the_next_epoch() -> None:
    run = simulate(DEMO, seed=2, crashes=[30.0, 80.0], downtime_h=1, patient="typical")
    assert run.exit_status == "complete"
    claims = run.of_kind(rec.ControllerClaimed)
    assert [c.epoch for c in claims] == [1, 2, 3]
    assert claims[0].taken_over_from is None
    for claim in claims[1:]:
        assert claim.taken_over_from is not None and claim.taken_over_from.why == "gone"
    # a reproducible simulation records no host or pid: its record is a function of inputs
    assert {(c.host, c.pid) for c in claims} == {(None, None)}
    kinds = [r.kind for r in run.records]
    assert kinds[1] is RecordKind.RELEASE_PLAN  # right after run_started
    assert kinds[2] is RecordKind.CONTROLLER_CLAIMED  # then the claim
    for index, kind in enumerate(kinds):
        if kind is RecordKind.RUN_RESUMED:
            assert kinds[index + 1] is RecordKind.CONTROLLER_CLAIMED


@pytest.mark.anyio
async def test_a_resume_plans_again_when_the_stale_owner_wrote_on_before_the_claim(
    db_location: Location, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = db_location
    protocol = Protocol("one", version="1")

    @protocol.step(resume="rerun")
    async def only(run: Run, valve: Valve) -> None:
        await valve.open()

    line = Line("test", {"valve": Valve()})
    with Journal(path, owner_stale_s=3600) as old:
        execution = Runner(old, clock_origin=ORIGIN).prepare(protocol, line)
        old_run = execution._journal
        old_run.append(execution._run_started)
        old.flush()
        real_claim = _owners.claim

        def claim_after_a_late_record(*args: Any, **kwargs: Any) -> _owners.Claim:
            old_run.append(rec.BatchValue(step=None, name="late", value=1))
            old.flush()
            return real_claim(*args, **kwargs)

        monkeypatch.setattr(_owners, "claim", claim_after_a_late_record)
        with Journal(path, create=False, owner_stale_s=0) as new:
            resumed = Runner(new, clock_origin=ORIGIN).resume(protocol, line, execution.run_id)
            plan = resumed.resume_plan
            assert plan is not None and plan.last_seq == 1 and plan.values == {"late": 1}
            assert resumed._journal.next_seq == 2
            new.release_run(resumed._journal)
