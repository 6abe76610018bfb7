"""An ended batch is freed while the others run: only its outcome and holds are kept.

At 1,000 concurrent batches every batch's simulated line, world, site and execution stayed
alive until the last batch ended (the hold responders were kept in a list, each holding
its execution); see bench/README.md, "memory per concurrent batch".
"""

from __future__ import annotations

import gc
import itertools
import weakref
from collections.abc import Callable
from typing import Any

import pytest

from cellauto import Protocol, Run
from cellauto.instruments import BarcodeScanner
from cellauto.protocols.execution import RunOutcome
from cellauto.protocols.runner import Runner
from cellauto.records.backend import Location
from cellauto.sim.batches import simulate_batches

protocol = Protocol("short-and-long", version="0.1")
_order = itertools.count()


@protocol.step
async def work(run: Run, scanner: BarcodeScanner) -> None:
    """The batch that gets here first ends after 5 minutes, the other after an hour."""
    await run.sleep(minutes=5 if next(_order) % 2 == 0 else 60)


def test_a_batch_that_ended_is_freed_before_the_last_ends(
    db_location: Location, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches: list[dict[str, weakref.ref[Any]]] = []  # each batch's objects, as prepared
    ended: list[dict[str, weakref.ref[Any]]] = []
    alive_at_the_last_end: list[str] = []
    prepare = Runner.prepare

    def watched_prepare(self: Runner, protocol: Protocol, line: Any, *a: Any, **kw: Any) -> Any:
        execution = prepare(self, protocol, line, *a, **kw)
        refs = {
            "execution": weakref.ref(execution),
            "line": weakref.ref(line),
            "scanner": weakref.ref(line.equipment["scanner"]),
            "world": weakref.ref(line.equipment["scanner"].world),
            "site": weakref.ref(kw["site"]),
        }
        batches.append(refs)
        execution.execute = _on_end(execution.execute, refs)  # type: ignore[method-assign]
        return execution

    def _on_end(
        execute: Callable[..., Any], refs: dict[str, weakref.ref[Any]]
    ) -> Callable[..., Any]:
        async def executed(**options: Any) -> RunOutcome:
            outcome: RunOutcome = await execute(**options)
            ended.append(refs)
            if len(ended) == len(batches):  # the last batch: the others ended long ago
                gc.collect()
                for number, earlier in enumerate(ended[:-1]):
                    alive = [name for name, ref in earlier.items() if ref() is not None]
                    alive_at_the_last_end.extend(f"batch {number} {name}" for name in alive)
            return outcome

        return executed

    monkeypatch.setattr(Runner, "prepare", watched_prepare)
    done = simulate_batches(protocol, range(2), db=db_location)
    assert done.statuses == {"complete": 2} and len(ended) == 2
    assert alive_at_the_last_end == []
    gc.collect()
    assert all(ref() is None for refs in batches for ref in refs.values())
