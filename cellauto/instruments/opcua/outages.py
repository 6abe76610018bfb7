"""Connection outages: noticed, timed in process time, reported as gaps.

asyncua's supervisor reconnects on its own; :class:`OutageWatch` follows the client's
state changes and turns each outage, from the loss to the next active session, into a
:class:`ConnectionGap` (``on_gap(started_process_time_s, ended_process_time_s,
reason)``, sync or async), so that the runner can journal it: values are lost in a gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable

from asyncua import Client
from asyncua.client.ua_client import UaClientState
from pydantic import BaseModel, ConfigDict

from cellauto.clock import Clock

__all__ = ["ConnectionGap", "GapCallback", "OutageWatch", "quiet_publish_loop"]

log = logging.getLogger(__name__)

GapCallback = Callable[[float, float, str], Awaitable[None] | None]
_DOWN = (UaClientState.DISCONNECTED, UaClientState.RECONNECTING)


class ConnectionGap(BaseModel):
    """An outage of the connection: no readings and no commands in between."""

    model_config = ConfigDict(frozen=True)

    started_process_time_s: float
    ended_process_time_s: float
    reason: str


class OutageWatch:
    """Follows one client's connection state; keeps and reports the gaps."""

    def __init__(
        self,
        client: Client,
        clock: Clock,
        where: Callable[[], str],
        on_gap: GapCallback | None,
        after_gap: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.client = client
        self.clock = clock
        self.where = where
        self.on_gap = on_gap
        self.after_gap = after_gap
        self.gaps: list[ConnectionGap] = []
        self.lost_at: float | None = None
        self._reason = ""
        self._task: asyncio.Task[None] | None = None
        client.connection_lost_callback = self._lost

    async def _lost(self, exc: Exception) -> None:
        self._reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _watch(self) -> None:
        async with self.client.subscribe_state() as states:
            while True:
                state = await states.next_change()
                if state is UaClientState.CONNECTED and self.lost_at is not None:
                    await self._ended()
                elif self.lost_at is None and state in _DOWN:
                    self.lost_at = self.clock.now_s()
                    log.warning("%s: connection lost; reconnecting", self.where())

    async def _ended(self) -> None:
        gap = ConnectionGap(
            started_process_time_s=self.lost_at or 0.0,
            ended_process_time_s=self.clock.now_s(),
            reason=self._reason or "connection lost",
        )
        self.lost_at, self._reason = None, ""
        self.gaps.append(gap)
        seconds = gap.ended_process_time_s - gap.started_process_time_s
        log.warning("%s: reconnected after %.1f s (%s)", self.where(), seconds, gap.reason)
        try:
            if self.after_gap is not None:
                await self.after_gap()
            if self.on_gap is not None:
                outcome = self.on_gap(
                    gap.started_process_time_s, gap.ended_process_time_s, gap.reason
                )
                if inspect.isawaitable(outcome):
                    await outcome
        except Exception:
            log.exception("%s: reporting the outage failed", self.where())


class _PublishWhileDown(logging.Filter):
    """Demote asyncua's "Publish iteration crashed" traceback to DEBUG when the cause is
    the connection being down: its publish loop logs one per second of an outage at
    ERROR, while the adapter reports the outage itself (a warning and a gap)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, ConnectionError) and record.getMessage().startswith("Publish"):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            record.exc_info, record.exc_text = None, None
            record.msg = f"{record.msg} ({exc})"
        return True


_PUBLISH_FILTER = _PublishWhileDown()


def quiet_publish_loop() -> None:
    """Install :class:`_PublishWhileDown` on asyncua's session logger (once)."""
    publish_log = logging.getLogger("asyncua.client.ua_session.UaSession")
    if _PUBLISH_FILTER not in publish_log.filters:
        publish_log.addFilter(_PUBLISH_FILTER)
