"""Many batches unattended: every Held batch is answered by the declared on-hold policy."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from cellauto import Protocol, Run, Spec
from cellauto.records import Journal
from cellauto.records import payloads as rec
from cellauto.records.backend import Location
from cellauto.sim.batches import simulate_batches
from tests.raw_sql import nothing_written

protocol = Protocol("hold-on-check", version="0.1")


@protocol.step(checks={"x": Spec(min=2, unit="u")})
async def measure(run: Run) -> None:
    """The check fails; its policy is hold."""
    await run.sleep(minutes=5)
    run.check("x", 1)


@protocol.step
async def after(run: Run) -> None:
    await run.sleep(minutes=5)


def _commands(db: Path) -> list[rec.Command]:
    with Journal(db, create=False) as journal:
        return [
            r.payload
            for summary in journal.runs()
            for r in journal.records(summary.run_id)
            if isinstance(r.payload, rec.Command) and r.payload.command != "Start"
        ]


@pytest.mark.parametrize(
    ("on_hold", "held_status", "command"),
    [
        ("stop", "stopped", "Stop"),
        ("abort", "aborted", "Abort"),
        ("restart", "complete", "Restart"),
    ],
)
def test_held_batches_are_answered_by_the_policy_and_journaled(
    db_location: Location, tmp_path: Path, on_hold: str, held_status: str, command: str
) -> None:
    db = db_location
    batches = simulate_batches(protocol, range(3), db=db, on_hold=on_hold)
    assert [o.exit_status for o in batches.outcomes] == [held_status] * 3
    held_ids = [o.run_id for o in batches.outcomes]
    assert batches.held == dict.fromkeys(held_ids, 1)
    by = f"simulate_batches(on_hold={on_hold!r})"
    assert [(a.run_id, a.step, a.command, a.by, a.applied) for a in batches.answers] == [
        (run_id, "measure", command, by, True) for run_id in held_ids
    ]
    answered = [(c.command, c.state, c.accepted) for c in _commands(db) if c.by == by]
    assert answered == [(command, "Held", True)] * 3
    assert all("on-hold policy" in c.reason for c in _commands(db) if c.by == by)
    assert batches.summary().startswith(f"3 batches: 3 {held_status}; ")
    assert f"3 held (3 holds), answered 3 {command} by {by}" in batches.summary()


@pytest.mark.parametrize("on_hold", [None, "prompt", "continue"])
def test_leaving_held_batches_unanswered_is_refused_before_anything_is_written(
    db_location: Location, tmp_path: Path, on_hold: str | None
) -> None:
    db = db_location
    with pytest.raises(ValueError, match="never end"):
        simulate_batches(protocol, range(2), db=db, on_hold=on_hold)  # type: ignore[arg-type]
    assert nothing_written(db)


def test_the_same_seeds_give_the_same_batches(
    db_location_factory: Callable[[], Location],
) -> None:
    first = simulate_batches(protocol, [1, 2], db=db_location_factory())
    second = simulate_batches(protocol, [1, 2], db=db_location_factory())
    assert first.outcomes == second.outcomes


def test_the_collector_threshold_is_restored(db_location: Location, tmp_path: Path) -> None:
    import gc

    before = gc.get_threshold()
    simulate_batches(protocol, [1], db=db_location)
    assert gc.get_threshold() == before
