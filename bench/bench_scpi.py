"""An SCPI query through the VISA adapter versus a bare pyvisa query on the same server.

The simulated freezer is served in its own process (``python -m cellauto.sim.scpi``, a
real-time loop), so the bare blocking query shares no interpreter lock with it. In the
same run, interleaved, best of several repetitions of N queries of ``MEAS:TEMP:CHAM?``:

* bare: ``float(inst.query(...))`` with pyvisa-py, blocking, no event loop;
* adapter: ``await session.query(..., parse_real)`` on an asyncio loop: the session's
  worker thread, ``awaiting_outside``, raw read, strict parse (the chosen design);
* alternatives for the thread hop: ``anyio.to_thread.run_sync`` and a one-worker
  ``ThreadPoolExecutor`` around the same bare query, and the hop alone (no I/O).

Run: ``python bench/bench_scpi.py [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import anyio
import pyvisa

from cellauto.instruments.controlled_rate_freezer import standard_freeze_profile
from cellauto.instruments.visa import VisaControlledRateFreezer
from cellauto.instruments.visa._thread import SessionThread
from cellauto.instruments.visa.scpi_reply import parse_real

QUERY = "MEAS:TEMP:CHAM?"
TARGET = 1.1


@contextmanager
def served_freezer() -> Iterator[str]:
    """The VISA resource of a simulated freezer served by a child process."""
    command = [sys.executable, "-m", "cellauto.sim.scpi", "--counter-port", "0"]
    child = subprocess.Popen(
        [*command, "--freezer-port", "0"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert child.stdout is not None
        yield json.loads(child.stdout.readline())["freezer"]
    finally:
        if child.stdin is not None:
            child.stdin.close()  # the server stops when its standard input closes
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _per_query_us(started: float, n: int) -> float:
    return (time.perf_counter() - started) / n * 1e6


async def _timed(n: int, call: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    for _ in range(n):
        await call()
    return _per_query_us(started, n)


async def _measure(resource: str, n: int, repetitions: int) -> dict[str, float]:
    freezer = await VisaControlledRateFreezer.connect(resource)
    manager = pyvisa.ResourceManager("@py")
    bare = manager.open_resource(resource, read_termination="\n", write_termination="\n")
    bare.timeout = 5000
    executor = ThreadPoolExecutor(max_workers=1)
    hop = SessionThread("bench hop")
    loop = asyncio.get_running_loop()
    best: dict[str, float] = {}

    def keep(case: str, us: float) -> None:
        best[case] = min(best.get(case, float("inf")), us)

    def bare_query() -> float:
        return float(bare.query(QUERY))

    def raw_io() -> bytes:
        bare.write_raw(QUERY.encode() + b"\n")
        return bare.read_raw()

    try:
        await freezer.load_profile(standard_freeze_profile())  # measurements need a profile
        for _ in range(3):  # warm up both paths
            bare_query()
            await freezer.session.query(QUERY, parse_real)
        for _ in range(repetitions):
            started = time.perf_counter()
            for _ in range(n):
                bare_query()  # blocking on purpose: nothing else runs on this loop
            keep("bare", _per_query_us(started, n))
            keep("adapter", await _timed(n, lambda: freezer.session.query(QUERY, parse_real)))
            keep("status", await _timed(n, freezer.status))
            keep("to_thread", await _timed(n, lambda: anyio.to_thread.run_sync(bare_query)))
            keep("executor", await _timed(n, lambda: loop.run_in_executor(executor, bare_query)))
            keep("session_thread", await _timed(n, lambda: hop.run(bare_query)))
            keep("hop_session_thread", await _timed(n, lambda: hop.run(int)))
            keep("hop_to_thread", await _timed(n, lambda: anyio.to_thread.run_sync(int)))
            keep("hop_executor", await _timed(n, lambda: loop.run_in_executor(executor, int)))
        best.update(await _where_time_goes(hop, raw_io, n))
    finally:
        hop.stop()
        executor.shutdown()
        manager.close()
        await freezer.aclose()
    return best


async def _where_time_goes(
    hop: SessionThread, raw_io: Callable[[], bytes], n: int
) -> dict[str, float]:
    """Medians of the legs of one query through the session thread, and of the bare I/O."""
    clock = time.perf_counter
    legs: list[tuple[float, float, float]] = []

    def job() -> tuple[float, float]:
        started = clock()
        raw_io()
        return started, clock()

    for _ in range(n):
        sent = clock()
        started, done = await hop.run(job)
        back = clock()
        legs.append((started - sent, done - started, back - done))
    bare = []
    for _ in range(n):
        started = clock()
        raw_io()
        bare.append(clock() - started)
    median = [statistics.median(leg) * 1e6 for leg in zip(*legs, strict=True)]
    return {
        "leg_to_worker": median[0],
        "leg_io_in_worker": median[1],
        "leg_back_to_loop": median[2],
        "leg_bare_io": statistics.median(bare) * 1e6,
    }


def run(quick: bool = False) -> list[dict[str, object]]:
    n, repetitions = (200, 3) if quick else (1000, 5)
    with served_freezer() as resource:
        best = anyio.run(_measure, resource, n, repetitions)
    bare = best["bare"]
    ratio = best["adapter"] / bare

    def row(case: str, key: str, detail: str, target: str = "", ok: bool | None = None) -> dict:
        return {
            "case": f"scpi: {case}",
            "value": f"{best[key]:.0f} µs",
            "target": target,
            "detail": detail,
            "ok": ok,
        }

    hops = (
        f"hop alone: session thread {best['hop_session_thread']:.0f} µs, "
        f"anyio.to_thread {best['hop_to_thread']:.0f} µs, "
        f"executor {best['hop_executor']:.0f} µs"
    )
    return [
        row(f"bare pyvisa query {QUERY} ({n} x, best of {repetitions})", "bare", "baseline"),
        row(
            f"adapter query {QUERY} (same server, same run)",
            "adapter",
            f"{ratio:.2f}x bare; {hops}",
            target=f"≤ {TARGET}x bare",
            ok=ratio <= TARGET,
        ),
        row(
            "alternative: bare query in anyio.to_thread",
            "to_thread",
            f"{best['to_thread'] / bare:.2f}x bare",
        ),
        row(
            "alternative: bare query in a 1-worker executor",
            "executor",
            f"{best['executor'] / bare:.2f}x bare",
        ),
        row(
            "bare query in the session thread (no parse)",
            "session_thread",
            f"{best['session_thread'] / bare:.2f}x bare",
        ),
        row("adapter status() (PROG:STAT? -> FreezerStatus)", "status", "record + pydantic model"),
        row(
            "where a threaded query's time goes (medians)",
            "leg_io_in_worker",
            f"loop -> worker {best['leg_to_worker']:.0f} µs; write+read in the worker "
            f"{best['leg_io_in_worker']:.0f} µs (same I/O on the caller's thread "
            f"{best['leg_bare_io']:.0f} µs); worker -> loop {best['leg_back_to_loop']:.0f} µs",
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer queries, for a smoke run")
    rows = run(quick=parser.parse_args().quick)
    width = max(len(str(r["case"])) for r in rows)
    for r in rows:
        met = "" if r["ok"] is None else ("yes" if r["ok"] else "NO")
        print(f"{r['case']:<{width}}  {r['value']:>8}  {r['target']:<12} {met:<3} {r['detail']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
