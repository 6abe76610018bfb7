"""Where a VISA session waits for a reply: spinning, on the event loop, in its thread."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from cellauto.instruments.visa import VisaSession, _connection
from cellauto.instruments.visa.scpi_reply import parse_real
from cellauto.instruments.visa.session import _SpinPolicy
from tests.wire.scpi_support import (
    Delayed,
    Reply,
    fake_instrument,
    query_a_reply_50_ms_away,
    resource,
    visa_session,
)

pytestmark = pytest.mark.anyio

TEMP = "MEAS:TEMP:CHAM?"


async def test_an_instrument_that_answers_at_once_is_read_within_the_spin() -> None:
    replies: list[Reply] = [f"-{n}.25\n".encode() for n in range(20)]
    async with visa_session({TEMP: replies}, "thread", spin_s=0.01) as session:
        values = [await session.query(TEMP, parse_real) for _ in range(20)]
    assert values == [-n - 0.25 for n in range(19)] + [-19.25]
    assert session.replies_spun > 0
    assert session.replies_threaded == 0
    assert session.replies_spun + session.replies_awaited == 20


async def test_a_slow_reply_is_awaited_on_the_loop_not_in_a_thread() -> None:
    session = await query_a_reply_50_ms_away()
    assert (session.replies_spun, session.replies_awaited, session.replies_threaded) == (0, 1, 0)


async def test_a_simulator_on_the_same_loop_is_awaited_there() -> None:
    async with visa_session({TEMP: [b"-45.25\n"]}, "loop") as session:
        for _ in range(5):
            assert await session.query(TEMP, parse_real) == -45.25
    assert session.replies_awaited == 5
    assert session.replies_threaded == 0


async def test_a_cancelled_wait_closes_the_session_so_a_late_reply_answers_nothing() -> None:
    script: dict[str, list[Reply]] = {TEMP: [Delayed(0.3, b"-1.25\n"), b"-2.25\n"]}
    async with fake_instrument(script, "thread") as fake:
        session = await VisaSession.open(resource(fake.port), timeout_s=2.0)
        try:
            with anyio.move_on_after(0.05) as scope:
                await session.query(TEMP, parse_real)
            assert scope.cancelled_caught
            await anyio.sleep(0.4)  # the late reply has been sent by now
            assert await session.query(TEMP, parse_real) == -2.25
        finally:
            await session.aclose()
    assert fake.count(TEMP) == 2


async def test_on_the_virtual_clock_the_timeout_is_real_time() -> None:
    # The simulator takes 30 s of (virtual) process time to answer; the 1 s timeout is
    # real time, so the answer arrives: the loop's timer expires first, the rest of the
    # wait moves to the session's thread, where pyvisa's timeout is real.
    async with visa_session({TEMP: [Delayed(30.0, b"-45.25\n")]}, "loop", timeout_s=1.0) as session:
        assert await session.query(TEMP, parse_real) == -45.25
    assert session.replies_threaded == 1


def test_the_spin_backs_off_after_misses_in_a_row_and_resets_on_a_hit() -> None:
    policy = _SpinPolicy(200e-6)

    def tries(n: int) -> list[bool]:
        return [policy.wants_to_try() for _ in range(n)]

    assert tries(3) == [True] * 3
    policy.missed()  # one late reply is a hiccup
    assert tries(1) == [True]
    policy.missed()  # two in a row: skip 1
    assert tries(2) == [False, True]
    policy.missed()  # three: skip 3
    assert tries(4) == [False, False, False, True]
    for _ in range(20):
        policy.missed()
    assert tries(1024) == [False] * 1023 + [True]  # at most 1,023 skipped
    policy.replied()
    policy.missed()
    assert tries(1) == [True]
    assert _SpinPolicy(0).wants_to_try() is False


@pytest.mark.parametrize("spin_s", [-1e-6, 0.02])
def test_a_spin_budget_outside_0_to_10_ms_is_refused(spin_s: float) -> None:
    with pytest.raises(ValueError, match=r"0 <= spin_s <= 0\.01"):
        VisaSession(
            "TCPIP0::127.0.0.1::1::SOCKET", timeout_s=1.0, retries=0, backend="@py", spin_s=spin_s
        )


async def test_without_poll_every_exchange_runs_in_the_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_connection, "_CAN_POLL", False)  # as on Windows
    async with visa_session({TEMP: [b"-45.25\n"]}, "thread") as session:
        assert await session.query(TEMP, parse_real) == -45.25
    assert (session.replies_spun, session.replies_awaited, session.replies_threaded) == (0, 0, 1)


async def test_a_loop_that_cannot_watch_sockets_hands_the_wait_to_the_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_add_reader(*args: object) -> None:
        raise NotImplementedError  # as Windows' proactor loop

    monkeypatch.setattr(asyncio.get_running_loop(), "add_reader", no_add_reader)
    async with visa_session({TEMP: [Delayed(0.05, b"-45.25\n")]}, "thread", spin_s=0) as session:
        assert await session.query(TEMP, parse_real) == -45.25
    assert (session.replies_awaited, session.replies_threaded) == (0, 1)


async def test_closing_waits_for_the_reply_in_flight() -> None:
    async with fake_instrument({TEMP: [Delayed(0.2, b"-45.25\n")]}, "thread") as fake:
        session = await VisaSession.open(resource(fake.port), timeout_s=2.0, spin_s=0)
        values: list[float] = []

        async def ask() -> None:
            values.append(await session.query(TEMP, parse_real))

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask)
            await anyio.sleep(0.05)  # the query waits on the loop
            await session.aclose()  # waits for it, then closes
    assert values == [-45.25]


async def test_a_long_request_is_written_from_the_thread_never_the_loop() -> None:
    long_message = "PROF:NAME " + '"' + "x" * 2000 + '"'
    async with visa_session({long_message: [b"1\n"]}, "thread") as session:
        assert await session.query(long_message, int) == 1
    assert (session.replies_spun, session.replies_awaited, session.replies_threaded) == (0, 0, 1)
