"""Helpers of the SCPI/VISA tests: simulated worlds, a raw client, a scripted fake server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import anyio
import anyio.from_thread
from anyio.abc import SocketAttribute, SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream

from cellauto.clock import Clock, awaiting_outside, serving_outside
from cellauto.instruments.materials import Sample
from cellauto.instruments.visa import VisaSession
from cellauto.instruments.visa.scpi_reply import parse_real
from cellauto.sim.counter import SimCellCounter
from cellauto.sim.freezer import SimControlledRateFreezer
from cellauto.sim.material import Container
from cellauto.sim.world import SimWorld

ORIGIN = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def make_world(seed: int = 7) -> tuple[SimWorld, Sample]:
    """A world with one product bag and one sample drawn from it."""
    world = SimWorld(Clock(ORIGIN), seed=seed)
    bag = world.add_container(
        Container("BAG-1", viable_cells=2e9, dead_cells=1e8, volume_ml=100.0, dmso_pct=7.5)
    )
    world.add_container(Container("BAG-2", viable_cells=2e9, dead_cells=1e8, volume_ml=100.0))
    return world, world.draw_sample(bag, 0.5, prefix="P")


def make_counter(seed: int = 7) -> tuple[SimCellCounter, Sample]:
    world, sample = make_world(seed)
    return SimCellCounter(world), sample


def make_freezer(seed: int = 7) -> SimControlledRateFreezer:
    world, _ = make_world(seed)
    return SimControlledRateFreezer(world)


async def ask(port: int, message: bytes, *, replies: int = 1) -> list[bytes]:
    """Send ``message`` on a fresh connection and read ``replies`` lines (raw, with \\n)."""
    with awaiting_outside():
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(message)
            reader = BufferedByteReceiveStream(stream)
            return [await reader.receive_until(b"\n", 65536) + b"\n" for _ in range(replies)]


#: A scripted reply: bytes are sent as they are, None sends nothing, CLOSE hangs up.
CLOSE = b"<close>"


@dataclass(frozen=True)
class Delayed:
    """``reply`` sent after ``after_s`` seconds of the serving loop's clock."""

    after_s: float
    reply: bytes


Reply = bytes | Delayed | None
#: Where a fake instrument is served: on the test's own event loop, or on a loop in
#: another thread (an instrument that answers while the test's loop is busy).
Host = Literal["loop", "thread"]


@dataclass
class FakeInstrument:
    """A raw TCP 'instrument' answering from a script, recording every line it gets.

    ``script`` maps a message (without \\n) to the replies for its successive arrivals;
    the last one repeats. ``*IDN?``, ``*CLS`` and ``SYST:ERR?`` answer sanely unless
    scripted. Anything else unscripted gets no reply.
    """

    script: dict[str, list[Reply]] = field(default_factory=dict)
    received: list[str] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        defaults: dict[str, list[Reply]] = {
            "*IDN?": [b"fake-vendor,FakeModel,F-0001,1.0\n"],
            "*CLS": [None],
            "SYST:ERR?": [b'0,"No error"\n'],
        }
        self.script = {**defaults, **self.script}

    def count(self, message: str) -> int:
        return self.received.count(message)

    async def _serve(self, stream: SocketStream) -> None:
        reader = BufferedByteReceiveStream(stream)
        async with stream:
            while True:
                try:
                    line = (await reader.receive_until(b"\n", 65536)).decode()
                except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError):
                    return
                self.received.append(line)
                with serving_outside():  # as the simulators' servers do
                    if not await self._answer(stream, line):
                        return

    async def _answer(self, stream: SocketStream, line: str) -> bool:
        """Send the scripted reply to ``line``; False once the connection is to end."""
        replies = self.script.get(line, [None])
        reply = replies.pop(0) if len(replies) > 1 else replies[0]
        if isinstance(reply, Delayed):
            await anyio.sleep(reply.after_s)
            reply = reply.reply
        if reply == CLOSE:
            return False
        if reply is not None:
            try:
                await stream.send(reply)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                return False  # the client gave up and hung up first
        return True


@asynccontextmanager
async def fake_instrument(
    script: dict[str, list[Reply]], host: Host = "loop"
) -> AsyncIterator[FakeInstrument]:
    """A :class:`FakeInstrument` served on ``host`` for the duration of the block."""
    if host == "loop":
        async with _served(script) as fake:
            yield fake
        return
    with (
        anyio.from_thread.start_blocking_portal() as portal,
        portal.wrap_async_context_manager(_served(script)) as fake,
    ):
        yield fake


@asynccontextmanager
async def _served(script: dict[str, list[Reply]]) -> AsyncIterator[FakeInstrument]:
    fake = FakeInstrument(script)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    fake.port = listener.extra(SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, fake._serve, tg)
        try:
            yield fake
        finally:
            tg.cancel_scope.cancel()


def resource(port: int) -> str:
    return f"TCPIP0::127.0.0.1::{port}::SOCKET"


@asynccontextmanager
async def visa_session(
    script: dict[str, list[Reply]],
    host: Host = "loop",
    *,
    timeout_s: float = 5.0,
    retries: int = 2,
    spin_s: float = 200e-6,
) -> AsyncIterator[VisaSession]:
    """A VisaSession open to a fake instrument serving ``script`` for the block (its
    counters stay readable after)."""
    async with fake_instrument(script, host) as fake:
        session = await VisaSession.open(
            resource(fake.port), timeout_s=timeout_s, retries=retries, spin_s=spin_s
        )
        try:
            yield session
        finally:
            await session.aclose()


async def query_a_reply_50_ms_away() -> VisaSession:
    """One ``MEAS:TEMP:CHAM?`` answered 50 ms late (2 s timeout); the closed session, whose
    counters tell where it waited."""
    script: dict[str, list[Reply]] = {"MEAS:TEMP:CHAM?": [Delayed(0.05, b"-45.25\n")]}
    async with visa_session(script, "thread", timeout_s=2.0) as session:
        assert await session.query("MEAS:TEMP:CHAM?", parse_real) == -45.25
    return session
