"""One worker thread per VISA session: blocking pyvisa calls, off the event loop, in order.

pyvisa is blocking and a session is not safe to use from two threads at once. Each
session gets its own thread that runs one job at a time (a job is a whole
transaction, or the rest of one begun on the loop's thread, see :mod:`.session`), so
a reply always goes to the request that asked for it, even when the awaiting task is
cancelled midway (the job still completes; only its result is dropped). The loop's
thread touches the session only while :attr:`SessionThread.idle`. While a job runs the
awaiting task is inside :func:`cellauto.clock.awaiting_outside`, so virtual time does
not jump past a request in flight.

Chosen by measurement (``bench/bench_scpi.py``, 2 vCPU): the hop loop -> thread ->
loop alone costs 25-35 µs here against 55-70 µs for a one-worker
``ThreadPoolExecutor`` and 75-95 µs for ``anyio.to_thread.run_sync`` (a
``queue.SimpleQueue`` and one ``call_soon_threadsafe``; no executor futures, no
capacity limiter, no worker lookup).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from cellauto.clock import awaiting_outside
from cellauto.errors import InstrumentError

__all__ = ["SessionThread"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_Job = tuple[Callable[[], Any], asyncio.AbstractEventLoop, "asyncio.Future[Any]"]


class SessionThread:
    """A daemon thread running submitted callables one at a time."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._closed = False
        #: Jobs submitted and not yet settled on the loop (cancelled awaits included).
        self._outstanding = 0
        self._thread.start()

    @property
    def idle(self) -> bool:
        """No job is queued or running: the session may be used from the loop's thread."""
        return self._outstanding == 0

    async def run(self, job: Callable[[], T]) -> T:
        """Run ``job`` in the thread and return its result (or raise its exception)."""
        if self._closed:
            raise InstrumentError(f"{self.name}: the session is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._outstanding += 1
        with awaiting_outside():
            self._jobs.put((job, loop, future))
            return await future

    def stop(self) -> None:
        """Let the thread end after the jobs already submitted."""
        if not self._closed:
            self._closed = True
            self._jobs.put(None)

    def join(self, timeout_s: float) -> bool:
        """Wait for the thread to end; False if it is still busy after ``timeout_s``."""
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _work(self) -> None:
        while (item := self._jobs.get()) is not None:
            job, loop, future = item
            try:
                result = job()
            except BaseException as exc:  # handed to the awaiting task, never lost here
                self._deliver(loop, future, None, exc)
            else:
                self._deliver(loop, future, result, None)

    def _deliver(
        self,
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[Any],
        result: Any,
        exc: BaseException | None,
    ) -> None:
        def settle() -> None:
            self._outstanding -= 1
            if future.done():  # the awaiting task was cancelled: drop the outcome
                return
            if exc is not None:
                future.set_exception(exc)
            else:
                future.set_result(result)

        try:
            loop.call_soon_threadsafe(settle)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            log.debug("event loop closed before a VISA job finished; result dropped")
