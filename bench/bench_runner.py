"""Runner overhead per empty step, and the virtual clock over 12 simulated days.

Run: ``python bench/bench_runner.py`` (or ``python bench/run.py`` for every table).
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import anyio

from cellauto import Protocol, Run
from cellauto.clock import virtual_loop_factory
from cellauto.instruments import Line
from cellauto.protocols import Runner
from cellauto.records import Journal

ORIGIN = datetime(2026, 1, 1, tzinfo=UTC)


def _empty_protocol(steps: int) -> Protocol:
    protocol = Protocol("empty-steps", version="1")
    for index in range(steps):

        async def empty(run: Run) -> None:
            pass

        protocol.step(name=f"step_{index:05d}")(empty)
    return protocol


def bench_empty_steps(steps: int) -> dict[str, object]:
    protocol = _empty_protocol(steps)

    async def bare() -> float:
        started = time.perf_counter()
        for step in protocol.steps:
            await step.function(None)
        return time.perf_counter() - started

    async def through_runner(db: Path) -> float:
        with Journal(db) as journal:
            runner = Runner(journal, clock_origin=ORIGIN)
            execution = runner.prepare(protocol, Line("bench", {}))
            started = time.perf_counter()
            outcome = await execution.execute()
            elapsed = time.perf_counter() - started
            execution.close()
            assert outcome.exit_status == "complete"
            return elapsed

    best_runner = best_bare = float("inf")
    for _ in range(3):
        with tempfile.TemporaryDirectory() as tmp:
            best_runner = min(best_runner, anyio.run(through_runner, Path(tmp) / "b.db"))
        best_bare = min(best_bare, anyio.run(bare))
    per_step_us = (best_runner - best_bare) / steps * 1e6
    return {
        "case": f"runner overhead per empty step ({steps} steps)",
        "value": f"{per_step_us:.1f} µs",
        "target": "≤ 50 µs",
        "detail": f"bare await {best_bare / steps * 1e6:.2f} µs/step; "
        f"run incl. 2 journal records/step {best_runner / steps * 1e6:.1f} µs/step",
        "ok": per_step_us <= 50,
    }


def bench_virtual_days(days: int = 12) -> dict[str, object]:
    async def minutes() -> tuple[int, float]:
        start = anyio.current_time()
        sleeps = 0
        while anyio.current_time() - start < days * 86400:
            await anyio.sleep(60)
            sleeps += 1
        return sleeps, anyio.current_time() - start

    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        sleeps, simulated = anyio.run(
            minutes, backend_options={"loop_factory": virtual_loop_factory}
        )
        best = min(best, time.perf_counter() - started)
    assert simulated >= days * 86400
    return {
        "case": f"virtual clock: 1-min sleeps over {days} days ({sleeps} sleeps)",
        "value": f"{best:.3f} s wall",
        "target": "well under 1 s",
        "detail": f"{sleeps / best:,.0f} sleeps/s; {simulated / best / 86400:,.0f} "
        "simulated days per wall second",
        "ok": best < 1.0,
    }


def run(quick: bool = False) -> list[dict[str, object]]:
    return [bench_empty_steps(1000 if quick else 5000), bench_virtual_days()]


if __name__ == "__main__":
    for row in run():
        print(f"{row['case']:<58} {row['value']:>14}  target {row['target']}  ({row['detail']})")
