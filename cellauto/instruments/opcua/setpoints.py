"""Watching the setpoints a run owns on a LADS device, for changes made behind its back.

The adapter subscribes to the ``TargetValue`` of every control function. The run
*owns* a setpoint once it has set it (the device's answer to ``SetSetpoints`` is the
value owned). A TargetValue notification that differs from the owned value while no
command of the run's own is changing setpoints means another client (or a person at
the device) changed it: :class:`SetpointWatch` reports one :class:`SetpointChange`
per new value to ``on_change`` and, when asked to, writes the run's setpoint back
through ``restore`` (the change then reads as restored once the device confirms it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

from asyncua import ua
from pydantic import BaseModel, ConfigDict

from cellauto.clock import Clock
from cellauto.instruments.bioreactor import Setpoints
from cellauto.instruments.opcua.lads import AnalogFunction

__all__ = ["SetpointCallback", "SetpointChange", "SetpointWatch"]

log = logging.getLogger(__name__)


class SetpointChange(BaseModel):
    """A setpoint the run owns, found changed on the device by someone else."""

    model_config = ConfigDict(frozen=True)

    function: str
    """The control function, e.g. ``TemperatureController``."""
    setpoint: str
    """The :class:`Setpoints` field, e.g. ``temperature_c``."""
    node: str
    """The TargetValue's NodeId as text (``ns=2;s=bioreactor/.../TargetValue``)."""
    expected: float
    """The run's setpoint (what it last set)."""
    found: float
    """What the device now has."""
    process_time_s: float
    """When the change was seen (process time, epoch s)."""
    restoring: bool
    """Whether the adapter is writing the run's value back."""


SetpointCallback = Callable[[SetpointChange], None]
Restore = Callable[[Setpoints], Awaitable[Any]]


class SetpointWatch:
    """Compares TargetValue notifications with the setpoints the run owns."""

    def __init__(
        self,
        functions: dict[ua.NodeId, AnalogFunction],
        *,
        where: str,
        clock: Clock,
        on_change: SetpointCallback | None,
        restore: Restore | None,
    ) -> None:
        self.functions = functions
        self.where = where
        self.clock = clock
        self.on_change = on_change
        self.restore = restore
        self.owned: dict[str, float] = {}
        self._seen: dict[ua.NodeId, float] = {}
        self._reported: dict[ua.NodeId, float] = {}
        self._busy = 0
        self._tasks: set[asyncio.Task[None]] = set()

    # -- what the run does ----------------------------------------------------------------
    @contextlib.contextmanager
    def changing(self) -> Any:
        """Around a command of the run's own that changes setpoints (no report meanwhile)."""
        self._busy += 1
        try:
            yield
        finally:
            self._busy -= 1

    def own(self, asked: Setpoints, answer: Setpoints) -> None:
        """The run set ``asked``; the device answered with its setpoints ``answer``."""
        for field in asked.model_dump(exclude_none=True):
            value = getattr(answer, field)
            if value is not None:
                self.owned[field] = float(value)
        for node_id, function in self.functions.items():
            if function.setpoint in self.owned:
                self._seen[node_id] = self.owned[function.setpoint]
                self._reported.pop(node_id, None)
        self._check()

    # -- what the device says -------------------------------------------------------------
    def notified(self, node_id: ua.NodeId, value: Any, data: ua.DataValue) -> None:
        """A TargetValue data change (subscription callback)."""
        if node_id not in self.functions or not isinstance(value, float):
            return
        self._seen[node_id] = value
        self._check()

    def _check(self) -> None:
        if self._busy:
            return
        for node_id, found in self._seen.items():
            function = self.functions[node_id]
            expected = self.owned.get(function.setpoint or "")
            if expected is None or math.isclose(found, expected, rel_tol=1e-9, abs_tol=1e-9):
                self._reported.pop(node_id, None)
                continue
            if self._reported.get(node_id) == found:
                continue  # told already
            self._reported[node_id] = found
            self._report(node_id, function, expected, found)

    def _report(
        self, node_id: ua.NodeId, function: AnalogFunction, expected: float, found: float
    ) -> None:
        field = function.setpoint or ""
        change = SetpointChange(
            function=function.browse_name, setpoint=field, node=node_id.to_string(),
            expected=expected, found=found, process_time_s=self.clock.now_s(),
            restoring=self.restore is not None,
        )  # fmt: skip
        log.warning(
            "%s: %s changed by someone else: %g, the run's %g%s", self.where, change.node,
            found, expected, "; restoring it" if self.restore else "",
        )  # fmt: skip
        if self.on_change is not None:
            try:
                self.on_change(change)
            except Exception:
                log.exception("%s: reporting the changed setpoint %s failed", self.where, field)
        if self.restore is not None:
            task = asyncio.get_running_loop().create_task(
                self._restore(Setpoints.model_validate({field: expected}))
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _restore(self, setpoints: Setpoints) -> None:
        if self.restore is None:
            return
        try:
            await self.restore(setpoints)
        except Exception as exc:  # reported; the alarm is journaled already
            log.error("%s: restoring %s failed: %s", self.where, setpoints, exc)

    async def aclose(self) -> None:
        tasks, self._tasks = list(self._tasks), set()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
