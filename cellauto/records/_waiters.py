"""Waiters on the journal writer: whoever hands the writer a batch and must learn when it
is committed (or why its commit failed) — a blocked thread, or an asyncio future settled
through its loop."""

from __future__ import annotations

import asyncio
import contextlib

from cellauto.errors import JournalError

__all__ = ["AsyncWaiter", "SyncWaiter", "Waiter"]


class SyncWaiter:
    """A thread that blocks until its batch is committed (or its commit failed)."""

    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = False
        self.error: JournalError | None = None

    def settle(self, error: JournalError | None) -> None:  # under the writer's lock
        self.done, self.error = True, error


class AsyncWaiter:
    """An asyncio future, settled from the writer thread through its loop."""

    __slots__ = ("future", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]) -> None:
        self.loop, self.future = loop, future

    def settle(self, error: JournalError | None) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            self.loop.call_soon_threadsafe(_settle_future, self.future, error)


def _settle_future(future: asyncio.Future[None], error: JournalError | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


Waiter = SyncWaiter | AsyncWaiter
