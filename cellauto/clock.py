"""One clock for the runner, the instruments and the simulators.

On the line, process time is real time. In simulation an asyncio event loop with a
virtual clock (:class:`VirtualTimeEventLoop`) is used: whenever every task is
waiting on a timer and no I/O is ready, the loop jumps straight to the next timer
(discrete-event simulation), so ``anyio.sleep(86_400)`` returns at once while
``loop.time()`` advances by a day. Nothing in a protocol or an instrument knows
which clock it runs on: they sleep with anyio and read time through :class:`Clock`.

Timers, ``anyio.fail_after`` and ``move_on_after`` all follow the virtual clock,
because asyncio and anyio read ``loop.time()``. Real I/O is still served: before
time jumps, the loop polls its selector without blocking, and when nothing at all
is scheduled it blocks on real I/O (a thread finishing, an operator typing).

Work outside the loop. Time may only jump when nothing outside the loop is still
working on something the loop waits for. Two counters keep that account:

* :meth:`VirtualTimeEventLoop.awaiting_outside` — a task here waits for work done
  elsewhere: a request to an instrument over a socket or in a thread;
* :meth:`VirtualTimeEventLoop.serving_outside` — a request that arrived from
  outside is being served by a task here (a simulated instrument behind a server).

Time jumps only while ``awaiting <= serving``: every request we wait for has
reached a server on this loop, where it may itself wait in virtual time (a counter
taking 90 s to count). A simulated line served over real sockets in this process
therefore runs as fast as in-process, and deterministically, while the network
round trips themselves take the real time they take. Until then the loop waits on
real I/O and lets virtual time follow real time. :meth:`real_time` is the blunt
form: no jumping at all inside it (an operator thinking).

Network time is real. A timeout, retry interval, keep-alive or reconnect back-off
means real seconds whatever the clock (only process time is scaled or virtual);
:func:`real_seconds` turns it into the loop seconds to wait: ``s * scale`` on a
:class:`ScaledTimeEventLoop`, ``s`` on a real loop and on a virtual one, where a
network wait happens inside :meth:`~VirtualTimeEventLoop.awaiting_outside` (virtual
time follows real time there) and an idle timer with nobody waiting on the network
(a keep-alive) may as well be jumped over. asyncua's own timers are made real this
way too (:func:`cellauto._compat.asyncua.use_real_time_timers`).
"""

from __future__ import annotations

import asyncio
import selectors
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import anyio

from cellauto._compat import asyncio as _asyncio_compat  # noqa: F401  # checked at import

__all__ = [
    "Clock",
    "ScaledTimeEventLoop",
    "VirtualTimeEventLoop",
    "awaiting_outside",
    "is_virtual",
    "move_on_after_real",
    "real_seconds",
    "scaled_loop_factory",
    "serving_outside",
    "sleep_real",
    "time_paused",
    "virtual_loop_factory",
]


class _FastForwardSelector(selectors.BaseSelector):
    """A selector that turns 'block for N seconds' into 'advance virtual time by N'."""

    def __init__(self, inner: selectors.BaseSelector, loop_ref: list[VirtualTimeEventLoop]):
        self._inner = inner
        self._loop_ref = loop_ref

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.get_key(fileobj)

    def get_map(self) -> Any:
        return self._inner.get_map()

    def close(self) -> None:
        self._inner.close()

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        loop = self._loop_ref[0]
        if timeout is not None and timeout <= 0:
            return self._inner.select(0)
        if loop._paused:
            # A task waits for bookkeeping done outside (the journal's writer): it
            # takes no process time, so virtual time stands still until it is done.
            return self._inner.select(timeout)
        if not loop.may_jump():
            # Someone waits on real work: let real time pass, capped, and keep
            # virtual time in step with it.
            started = time.monotonic()
            events = self._inner.select(timeout)
            loop._virtual_now += time.monotonic() - started
            return events
        events = self._inner.select(0)
        if events:
            return events
        if timeout is None:
            # Nothing scheduled at all: only real I/O can wake us.
            return self._inner.select(None)
        loop._virtual_now += timeout
        return []


class VirtualTimeEventLoop(asyncio.SelectorEventLoop):
    """An asyncio loop whose ``time()`` is virtual and jumps ahead when all tasks wait.

    It relies on how asyncio's loop asks its selector to wait (see
    :mod:`cellauto._compat.asyncio`, checked at import)."""

    def __init__(self) -> None:
        ref: list[VirtualTimeEventLoop] = []
        super().__init__(selector=_FastForwardSelector(selectors.DefaultSelector(), ref))
        ref.append(self)
        self._virtual_now = 0.0
        self._real_time_depth = 0
        self._awaiting = 0
        self._serving = 0
        self._paused = 0

    def time(self) -> float:
        return self._virtual_now

    def may_jump(self) -> bool:
        """Whether virtual time may jump now (nothing outside is working for us)."""
        return self._real_time_depth == 0 and self._awaiting <= self._serving

    @contextmanager
    def awaiting_outside(self) -> Iterator[None]:
        """A task here waits for work done outside the loop (a socket, a thread)."""
        self._awaiting += 1
        try:
            yield
        finally:
            self._awaiting -= 1

    @contextmanager
    def time_paused(self) -> Iterator[None]:
        """A task here waits for work outside that takes no process time (a journal
        commit): virtual time neither jumps nor follows real time meanwhile."""
        self._paused += 1
        try:
            yield
        finally:
            self._paused -= 1

    @contextmanager
    def serving_outside(self) -> Iterator[None]:
        """A request from outside the loop is being served here."""
        self._serving += 1
        try:
            yield
        finally:
            self._serving -= 1

    @contextmanager
    def real_time(self) -> Iterator[None]:
        """Within this block virtual time advances only as fast as real time."""
        self._real_time_depth += 1
        try:
            yield
        finally:
            self._real_time_depth -= 1


class _ScaledSelector(_FastForwardSelector):
    """Waits ``timeout / scale`` real seconds for a timeout in scaled seconds."""

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        scale = self._loop_ref[0].scale  # type: ignore[attr-defined]
        return self._inner.select(None if timeout is None else max(0.0, timeout / scale))


class ScaledTimeEventLoop(asyncio.SelectorEventLoop):
    """An asyncio loop whose clock runs ``scale`` times faster than real time.

    For a simulated line served to other processes (``cellauto sim serve --speed``):
    every process on the line runs at the same speed, so the line's process time
    advances alike for all of them, without the discrete jumps of
    :class:`VirtualTimeEventLoop` that another process could not follow.
    """

    def __init__(self, scale: float) -> None:
        if not scale > 0:
            raise ValueError(f"time scale must be positive, got {scale!r}")
        ref: list[ScaledTimeEventLoop] = []
        super().__init__(selector=_ScaledSelector(selectors.DefaultSelector(), ref))  # type: ignore[arg-type]
        ref.append(self)
        self.scale = float(scale)
        self._real_origin = time.monotonic()

    def time(self) -> float:
        return (time.monotonic() - self._real_origin) * self.scale


def scaled_loop_factory(scale: float) -> Callable[[], asyncio.AbstractEventLoop]:
    """Loop factory for a line whose clock runs ``scale`` times faster than real time."""
    return lambda: ScaledTimeEventLoop(scale)


def virtual_loop_factory() -> asyncio.AbstractEventLoop:
    """Loop factory for ``anyio.run(..., backend_options={"loop_factory": ...})``."""
    return VirtualTimeEventLoop()


@contextmanager
def awaiting_outside() -> Iterator[None]:
    """On a virtual loop, :meth:`VirtualTimeEventLoop.awaiting_outside`; else nothing."""
    loop = asyncio.get_running_loop()
    if isinstance(loop, VirtualTimeEventLoop):
        with loop.awaiting_outside():
            yield
    else:
        yield


@contextmanager
def time_paused() -> Iterator[None]:
    """On a virtual loop, :meth:`VirtualTimeEventLoop.time_paused`; else nothing."""
    loop = asyncio.get_running_loop()
    if isinstance(loop, VirtualTimeEventLoop):
        with loop.time_paused():
            yield
    else:
        yield


@contextmanager
def serving_outside() -> Iterator[None]:
    """On a virtual loop, :meth:`VirtualTimeEventLoop.serving_outside`; else nothing."""
    loop = asyncio.get_running_loop()
    if isinstance(loop, VirtualTimeEventLoop):
        with loop.serving_outside():
            yield
    else:
        yield


def real_seconds(seconds: float, loop: asyncio.AbstractEventLoop | None = None) -> float:
    """Loop seconds that last ``seconds`` of real time on ``loop`` (default: the running one).

    For network timeouts, retry intervals, keep-alives and back-offs: ``seconds * scale``
    on a :class:`ScaledTimeEventLoop`; ``seconds`` otherwise (on a virtual loop a network
    wait runs inside ``awaiting_outside()``, where virtual time follows real time).
    """
    loop = loop or asyncio.get_running_loop()
    if isinstance(loop, ScaledTimeEventLoop):
        return seconds * loop.scale
    return seconds


@contextmanager
def move_on_after_real(seconds: float) -> Iterator[anyio.CancelScope]:
    """``anyio.move_on_after`` for ``seconds`` of real time, whatever the loop: a service's
    own timers (heartbeats, sweeps, a grace) on a virtual loop, which would otherwise
    jump them like the runs' process time. There a thread's timer cancels the scope."""
    loop = asyncio.get_running_loop()
    if not isinstance(loop, VirtualTimeEventLoop):
        with anyio.move_on_after(real_seconds(seconds, loop)) as scope:
            yield scope
        return
    with anyio.CancelScope() as scope:
        timer = threading.Timer(seconds, loop.call_soon_threadsafe, (scope.cancel,))
        timer.daemon = True
        timer.start()
        try:
            yield scope
        finally:
            timer.cancel()


async def sleep_real(seconds: float) -> None:
    """Sleep ``seconds`` of real time whatever the loop (see :func:`move_on_after_real`)."""
    with move_on_after_real(seconds):
        # an event nobody sets, not anyio.sleep_forever(): its timer at infinity would
        # let a virtual loop jump a day per turn while idle, spinning, until its time is
        # so large that a run's short timers no longer move it (float resolution)
        await anyio.Event().wait()


def is_virtual() -> bool:
    """True when the running event loop keeps virtual time."""
    return isinstance(asyncio.get_running_loop(), VirtualTimeEventLoop)


class Clock:
    """Process time for records and schedules, read from the running event loop.

    ``origin`` fixes the process time at which the clock was created; by default it is
    the current wall time on a real loop. On a virtual loop the default origin is the
    wall time at creation too, unless given (tests and reproducible simulations pass
    one). Process time then advances with ``loop.time()``.
    """

    def __init__(self, origin: datetime | None = None) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self.virtual = isinstance(loop, VirtualTimeEventLoop)
        if origin is not None and origin.tzinfo is None:
            raise ValueError("Clock origin must be timezone-aware (e.g. datetime(..., tzinfo=UTC))")
        origin_s = origin.timestamp() if origin is not None else time.time()
        self._offset_s = origin_s - loop.time()

    def now_s(self) -> float:
        """Process time as epoch seconds (virtual in simulation)."""
        return self._offset_s + self._loop.time()

    def now(self) -> datetime:
        """Process time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.now_s(), tz=UTC)

    def monotonic(self) -> float:
        """Seconds on the loop's monotonic clock (virtual in simulation)."""
        return self._loop.time()

    @staticmethod
    def wall_time_ns() -> int:
        """Wall time, always real, as epoch nanoseconds."""
        return time.time_ns()
