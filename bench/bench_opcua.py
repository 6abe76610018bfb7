"""OPC UA: the adapter's read versus a bare asyncua read, and idle cost in virtual time.

Everything runs on cellauto's virtual-time loop, server and clients on the same loop
(as a simulated line does), with the simulated bioreactor's server:

* reads, interleaved, best of several rounds of N reads of the temperature
  controller's CurrentValue, µs per read:

  - bare: ``await node.read_value()`` with a plain asyncua ``Client``;
  - adapter: ``await bioreactor.read_current_value("TemperatureController")``
    (state check, ``awaiting_outside``, one Read of the cached NodeId, status check);
  - adapter, ``read_process_values()`` served from the subscription cache (no round
    trip) and sampled on demand (``max_age_s=0``: one method call, the device samples
    and publishes all CurrentValues);

* idle: one connected adapter (subscribed) for one virtual day, wall seconds per
  virtual hour, with the timers tuned (the default on a virtual loop) and, for one
  virtual hour, a plain asyncua client and server with their timer defaults.

Run: ``python bench/bench_opcua.py [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from asyncua import Client, ua

from cellauto.clock import Clock, VirtualTimeEventLoop
from cellauto.instruments.opcua import OpcUaBioreactor
from cellauto.sim.bioreactor import SimBioreactor
from cellauto.sim.opcua import serve_bioreactor
from cellauto.sim.world import SimWorld

TARGET = 1.1
CURRENT = "bioreactor/FunctionalUnitSet/Unit1/FunctionSet/TemperatureController/CurrentValue"


def _sim() -> SimBioreactor:
    return SimBioreactor(SimWorld(Clock(datetime(2026, 1, 1, tzinfo=UTC)), seed=1))


def _run(main: Callable[[], Awaitable[Any]]) -> Any:
    with asyncio.Runner(loop_factory=VirtualTimeEventLoop) as runner:
        return runner.run(main())


async def _plain_client(url: str, **options: Any) -> Client:
    client = Client(url, **options)
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualTimeEventLoop)
    with loop.real_time():
        await client.connect()
    return client


async def _per_call_us(call: Callable[[], Awaitable[Any]], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        await call()
    return (time.perf_counter() - started) / count * 1e6


def bench_reads(count: int, rounds: int) -> list[dict[str, object]]:
    async def main() -> dict[str, float]:
        sim = _sim()
        async with serve_bioreactor(sim, sample_interval_s=600.0) as server:
            bare = await _plain_client(server.url, watchdog_intervall=3600.0)
            node = bare.get_node(ua.NodeId(CURRENT, 2))
            clock = sim.world.clock
            cached = await OpcUaBioreactor.connect(server.url, clock=clock, max_age_s=1e9)
            sampling = await OpcUaBioreactor.connect(server.url, clock=clock, max_age_s=0.0)
            cases: dict[str, Callable[[], Awaitable[Any]]] = {
                "bare": node.read_value,
                "adapter": lambda: cached.read_current_value("TemperatureController"),
                "cache": cached.read_process_values,
                "sample": sampling.read_process_values,
            }
            best = dict.fromkeys(cases, float("inf"))
            for case in cases.values():  # warm up
                await _per_call_us(case, 20)
            for _ in range(rounds):
                for name, case in cases.items():
                    best[name] = min(best[name], await _per_call_us(case, count))
            assert await node.read_value() == await cached.read_current_value(
                "TemperatureController"
            )
            await cached.aclose()
            await sampling.aclose()
            await bare.disconnect()
            return best

    best = _run(main)
    ratio = best["adapter"] / best["bare"]
    detail = f"best of {rounds} interleaved rounds of {count} reads"
    return [
        {
            "case": "opcua: bare asyncua read_value of a CurrentValue (baseline)",
            "value": f"{best['bare']:.0f} µs",
            "target": "",
            "detail": detail,
            "ok": None,
        },
        {
            "case": "opcua: adapter read_current_value (same node, same server)",
            "value": f"{best['adapter']:.0f} µs",
            "target": f"≤ {TARGET}x bare",
            "detail": f"{ratio:.2f}x bare",
            "ok": ratio <= TARGET,
        },
        {
            "case": "opcua: adapter read_process_values from the subscription cache",
            "value": f"{best['cache']:.1f} µs",
            "target": "",
            "detail": f"no round trip; {best['bare'] / best['cache']:.0f}x faster than a read",
            "ok": None,
        },
        {
            "case": "opcua: adapter read_process_values sampled on demand (max_age_s=0)",
            "value": f"{best['sample']:.0f} µs",
            "target": "",
            "detail": "one call; the device samples and publishes 10 values",
            "ok": None,
        },
    ]


async def _idle_adapter(hours: float, sample_interval_s: float | None) -> float:
    sim = _sim()
    async with serve_bioreactor(sim, sample_interval_s=sample_interval_s) as server:
        adapter = await OpcUaBioreactor.connect(server.url, clock=sim.world.clock)
        started = time.perf_counter()
        await asyncio.sleep(hours * 3600)
        wall = time.perf_counter() - started
        assert adapter._link.conn.connected and not adapter.gaps
        await adapter.aclose()
    return wall


async def _idle_untuned(hours: float) -> float:
    sim = _sim()
    async with serve_bioreactor(sim, sample_interval_s=None, tune_timers=False) as server:
        client = await _plain_client(server.url)  # asyncua defaults: probe every second

        class Handler:
            def datachange_notification(self, node: Any, value: Any, data: Any) -> None:
                pass

        subscription = await client.create_subscription(1000, Handler())
        await subscription.subscribe_data_change(client.get_node(ua.NodeId(CURRENT, 2)))
        started = time.perf_counter()
        await asyncio.sleep(hours * 3600)
        wall = time.perf_counter() - started
        await client.disconnect()
    return wall


def bench_idle(quick: bool) -> list[dict[str, object]]:
    day = 6.0 if quick else 24.0
    rows = []
    for label, interval in (("no sampling", None), ("sampling every 600 s", 600.0)):
        wall = _run(lambda interval=interval: _idle_adapter(day, interval))
        rows.append(
            {
                "case": f"opcua: idle adapter, tuned timers, {day:g} virtual h ({label})",
                "value": f"{wall / day:.3f} s/vh",
                "target": "",
                "detail": f"{wall:.2f} s wall in all",
                "ok": None,
            }
        )
    hour = 0.25 if quick else 1.0
    wall = _run(lambda: _idle_untuned(hour))
    rows.append(
        {
            "case": f"opcua: idle plain client + server, asyncua timer defaults, {hour:g} vh",
            "value": f"{wall / hour:.3f} s/vh",
            "target": "",
            "detail": "1 Hz probe, 1 Hz server clock and session watchdog, 1 s publishing",
            "ok": None,
        }
    )
    return rows


def run(quick: bool = False) -> list[dict[str, object]]:
    logging.getLogger("asyncua").setLevel(logging.ERROR)
    reads = bench_reads(count=200 if quick else 1000, rounds=3 if quick else 5)
    return reads + bench_idle(quick)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer reads, shorter days")
    for row in run(quick=parser.parse_args().quick):
        ok = "" if row["ok"] is None else ("yes" if row["ok"] else "NO")
        print(f"{row['case']:<72} {row['value']:>12}  {row['target']:<12} {ok:<4} {row['detail']}")


if __name__ == "__main__":
    main()
