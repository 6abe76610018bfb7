"""Waiting for the first of several events (anyio has no ``wait_any``)."""

from __future__ import annotations

import math

import anyio

__all__ = ["wait_any"]


async def wait_any(*events: anyio.Event, timeout_s: float = math.inf) -> None:
    """Return when any of ``events`` is set, or after ``timeout_s`` (loop seconds)."""
    with anyio.move_on_after(timeout_s):
        async with anyio.create_task_group() as group:

            async def wait(event: anyio.Event) -> None:
                await event.wait()
                group.cancel_scope.cancel()

            for event in events:
                group.start_soon(wait, event)
