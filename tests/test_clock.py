"""The virtual clock: time jumps when every task waits; timeouts follow it."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import anyio
import pytest

from cellauto.clock import (
    Clock,
    VirtualTimeEventLoop,
    is_virtual,
    move_on_after_real,
    sleep_real,
    virtual_loop_factory,
)

pytestmark = pytest.mark.anyio


async def test_sleep_advances_virtual_time_only() -> None:
    clock = Clock(datetime(2026, 3, 1, tzinfo=UTC))
    wall = time.monotonic()
    await anyio.sleep(7 * 86400)
    assert clock.now() == datetime(2026, 3, 8, tzinfo=UTC)
    assert time.monotonic() - wall < 60  # not a speed test: it simply did not really wait
    assert is_virtual()


async def test_concurrent_sleepers_wake_in_time_order() -> None:
    order: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await anyio.sleep(seconds)
        order.append((name, anyio.current_time()))

    start = anyio.current_time()
    async with anyio.create_task_group() as tg:
        tg.start_soon(sleeper, "day", 86400)
        tg.start_soon(sleeper, "hour", 3600)
        tg.start_soon(sleeper, "minute", 60)
    assert [name for name, _ in order] == ["minute", "hour", "day"]
    assert [t - start for _, t in order] == pytest.approx([60, 3600, 86400])


async def test_timeouts_follow_virtual_time() -> None:
    start = anyio.current_time()
    with anyio.move_on_after(3600) as scope:
        await anyio.sleep(86400)
    assert scope.cancelled_caught
    assert anyio.current_time() - start == pytest.approx(3600)


async def test_real_work_in_a_thread_is_not_overtaken() -> None:
    loop = VirtualTimeEventLoop  # type of the running loop, for the context manager
    import asyncio

    running = asyncio.get_running_loop()
    assert isinstance(running, loop)
    start = anyio.current_time()

    async def far_timer() -> None:
        await anyio.sleep(86400)

    async with anyio.create_task_group() as tg:
        tg.start_soon(far_timer)
        with running.real_time():
            await anyio.to_thread.run_sync(time.sleep, 0.05)
        assert anyio.current_time() - start < 60  # the day did not pass during the thread
        tg.cancel_scope.cancel()


def test_clock_origin_must_be_aware() -> None:
    async def main() -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            Clock(datetime(2026, 1, 1))

    anyio.run(main, backend_options={"loop_factory": virtual_loop_factory})


def test_real_clock_tracks_wall_time() -> None:
    async def main() -> None:
        clock = Clock()
        assert not clock.virtual
        assert abs(clock.now_s() - time.time()) < 5

    anyio.run(main)


async def test_time_waits_for_a_request_in_flight_then_jumps_while_it_is_served() -> None:
    """A client awaiting a server on this loop: no jump until the server has the request."""
    import socket

    from cellauto.clock import awaiting_outside, serving_outside

    start = anyio.current_time()

    async def serve(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.receive()
            with serving_outside():
                await anyio.sleep(90)  # the instrument takes 90 s of process time
                await stream.send(b"done")

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    def blocking_client() -> bytes:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"count")
            return sock.recv(16)

    async def far_timer() -> None:
        await anyio.sleep(86400)

    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, serve)
        tg.start_soon(far_timer)
        with awaiting_outside():
            reply = await anyio.to_thread.run_sync(blocking_client)
        elapsed = anyio.current_time() - start
        tg.cancel_scope.cancel()
    assert reply == b"done"
    assert 90 <= elapsed < 120  # the served 90 s passed; the far timer did not fire


def test_a_scaled_clock_runs_faster_than_real_time() -> None:
    from cellauto.clock import scaled_loop_factory

    async def main() -> tuple[float, float]:
        wall = time.monotonic()
        start = anyio.current_time()
        await anyio.sleep(360)  # six minutes at 3600x: about 0.1 s of real time
        return anyio.current_time() - start, time.monotonic() - wall

    simulated, real = anyio.run(main, backend_options={"loop_factory": scaled_loop_factory(3600)})
    assert simulated >= 360
    assert real < 5  # not a speed test: it did not wait six real minutes


async def test_a_real_time_wait_on_a_virtual_loop_neither_jumps_nor_spins() -> None:
    """A service's timer (a heartbeat, a sweep) waits real time while the runs' process
    time jumps; idle, the loop does not race virtual time ahead (it did, a day per turn,
    waiting on a timer at infinity, until short timers no longer moved it)."""
    started = anyio.current_time()
    await sleep_real(0.05)
    assert anyio.current_time() == started  # nothing else waited: no time jumped
    ticks: list[float] = []

    async def run() -> None:  # a run's process time meanwhile
        for _ in range(3):
            await anyio.sleep(3600)
            ticks.append(anyio.current_time() - started)

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        with move_on_after_real(0.05) as scope:
            await anyio.Event().wait()
    assert scope.cancelled_caught
    assert ticks == [3600, 7200, 10800]
