"""OpcUaBioreactor: the Bioreactor interface over OPC UA (LADS), asyncua client.

::

    bioreactor = await OpcUaBioreactor.connect("opc.tcp://host:4840/...", clock=clock,
                                               on_gap=journal_gap)
    async with bioreactor:
        await bioreactor.set_setpoints(Setpoints(temperature_c=37.0))

Commands (setpoints, seeding, reagents, feeding, sampling, harvest) are device
operations (:mod:`.operations`): started by one method call, their outcome awaited
from a subscription, resent safely after a lost reply. Setpoints are checked against
:data:`SETPOINT_LIMITS` before anything is sent.

**Freshness of readings.** The adapter subscribes to the device's ``ProcessValues``
snapshot (all process values of one sample, written at once). ``read_process_values``
returns that snapshot when it was measured *after the adapter's last command ended*
and is younger than ``max_age_s`` of process time; otherwise it asks the device to
sample now (``SampleProcessValues``, one round trip), which also refreshes the
snapshot for every subscriber. ``max_age_s=0`` always samples: the numbers are then
those of the in-process instrument for the same seed (serve with
``sample_interval_s=None``). The snapshot carries the process time it was measured
at. ``clock`` must be the line's process clock (the simulated world's clock in
simulation; by default a wall-time clock made at connect).

**Setpoints changed behind the run's back.** The adapter also subscribes to every
control function's ``TargetValue``; when one it has set changes on the device while
no command of its own is running, ``on_setpoint_changed`` is told (and, with
``restore_setpoints``, the adapter's value is written back): :mod:`.setpoints`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from typing import Any, Unpack

import anyio
from asyncua import ua

from cellauto.errors import InstrumentError
from cellauto.instruments.base import require_range
from cellauto.instruments.bioreactor import (
    SETPOINT_LIMITS,
    Bioreactor,
    CultureVolume,
    HarvestResult,
    ProcessValues,
    Reagent,
    Setpoints,
)
from cellauto.instruments.materials import Sample
from cellauto.instruments.opcua import _ua
from cellauto.instruments.opcua.lads import BIOREACTOR_CONTROL_FUNCTIONS
from cellauto.instruments.opcua.link import ConnectOptions, DeviceLink, OpcUaAdapter, open_link
from cellauto.instruments.opcua.setpoints import SetpointCallback, SetpointWatch

__all__ = ["OpcUaBioreactor"]

log = logging.getLogger(__name__)

_COMMANDS = ("SetSetpoints", "Seed", "AddReagent", "Feed", "DrawSample", "Harvest")
_PATHS = {
    "ProcessValues": "own:ProcessValues",
    "SampleProcessValues": "own:Commands/own:SampleProcessValues",
    **{name: f"own:Commands/own:{name}" for name in _COMMANDS},
    **{
        f"{f.browse_name}/{v}": f"lads:FunctionSet/own:{f.browse_name}/lads:{v}"
        for f in BIOREACTOR_CONTROL_FUNCTIONS
        for v in ("CurrentValue", "TargetValue")
    },
}
_SETPOINT_ORDER = (
    "temperature_c",
    "ph",
    "dissolved_oxygen_pct",
    "rocking_rate_rpm",
    "rocking_angle_deg",
    "perfusion_rate_ml_per_day",
)


class OpcUaBioreactor(OpcUaAdapter, Bioreactor):
    """A LADS bioreactor reached over OPC UA (create with :meth:`connect`)."""

    def __init__(self, link: DeviceLink, *, max_age_s: float) -> None:
        super().__init__(link)
        self.max_age_s = max_age_s
        self._latest: ProcessValues | None = None
        self._commands_ended_s = -math.inf
        targets = {
            link.nodes[f"{f.browse_name}/TargetValue"]: f for f in BIOREACTOR_CONTROL_FUNCTIONS
        }
        self.setpoint_watch = SetpointWatch(
            targets, where=link.conn.where, clock=link.conn.clock, on_change=None, restore=None
        )

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        max_age_s: float = 600.0,
        on_setpoint_changed: SetpointCallback | None = None,
        restore_setpoints: bool = False,
        **options: Unpack[ConnectOptions],
    ) -> OpcUaBioreactor:
        """Connect, resolve the device's nodes and subscribe to its process values.

        ``max_age_s``: see the freshness rule above. ``on_setpoint_changed(change)`` is
        told when a setpoint the adapter set is changed on the device by someone else;
        with ``restore_setpoints`` the adapter then writes its own value back
        (:mod:`.setpoints`). The rest (security, ``clock``, ``on_gap``, timeouts,
        device and unit): :class:`~cellauto.instruments.opcua.link.ConnectOptions`.
        """
        if not max_age_s >= 0:
            raise ValueError(f"max_age_s {max_age_s:g} s must be >= 0")
        link = await open_link(cls.interface_name, _PATHS, url, options)
        adapter = cls(link, max_age_s=max_age_s)
        watch = adapter.setpoint_watch
        watch.on_change = on_setpoint_changed
        watch.restore = adapter.set_setpoints if restore_setpoints else None
        try:
            await link.conn.subscribe([link.nodes["ProcessValues"]], adapter._snapshot)
            await link.conn.subscribe(list(watch.functions), watch.notified)
        except BaseException:
            await link.aclose()
            raise
        return adapter

    async def aclose(self) -> None:
        await self.setpoint_watch.aclose()
        await super().aclose()

    # -- readings -----------------------------------------------------------------------
    def _snapshot(self, node_id: ua.NodeId, value: Any, data: ua.DataValue) -> None:
        if not value:
            return
        try:
            self._keep(ProcessValues.model_validate_json(value))
        except ValueError as exc:
            log.warning("%s: unreadable ProcessValues notification: %s", self._link.conn.where, exc)

    def _keep(self, values: ProcessValues) -> None:
        if self._latest is None or values.process_time_s >= self._latest.process_time_s:
            self._latest = values

    def _fresh(self) -> ProcessValues | None:
        latest = self._latest
        if latest is None or latest.process_time_s < self._commands_ended_s:
            return None
        age_s = self._link.conn.clock.now_s() - latest.process_time_s
        # measured "in the future" means the device's clock and ours disagree (a controller
        # whose line has no shared epoch): its age is unknown, so it is not taken as fresh
        return latest if 0.0 <= age_s < self.max_age_s else None

    async def read_process_values(self) -> ProcessValues:
        fresh = self._fresh()
        if fresh is not None:
            return fresh
        nodes = self._link.nodes
        (text,) = await self._link.conn.call(
            nodes["Commands"], nodes["SampleProcessValues"], [], "read_process_values"
        )
        values = ProcessValues.model_validate_json(text)
        self._keep(values)
        return values

    async def process_values(self, interval_s: float) -> AsyncIterator[ProcessValues]:
        require_range(self, "interval_s", interval_s, low=1.0, unit="s")
        while True:
            yield await self.read_process_values()
            await anyio.sleep(interval_s)

    async def read_current_value(self, function: str) -> float:
        """One control function's CurrentValue (e.g. "TemperatureController"), one read."""
        node = self._link.nodes.nodes.get(f"{function}/CurrentValue")
        if node is None:
            known = ", ".join(f.browse_name for f in BIOREACTOR_CONTROL_FUNCTIONS)
            raise ValueError(f"{self.interface_name} {self.identity.serial}: no {function!r}; "
                             f"control functions: {known}")  # fmt: skip
        return float(await self._link.conn.read_value(node, f"read {function} CurrentValue"))

    # -- commands -----------------------------------------------------------------------
    async def _run(self, command: str, args: list[ua.Variant], what: str) -> Any:
        result = await self._link.operations.run(self._link.nodes[command], args, what)
        self._commands_ended_s = self._link.conn.clock.now_s()
        return result

    async def set_setpoints(self, setpoints: Setpoints) -> Setpoints:
        if setpoints.co2_pct is not None:
            raise InstrumentError(
                f"{self.interface_name} {self.identity.serial}: the OPC UA bioreactor has no "
                "CO2 set point; nothing was sent"
            )
        for field, value in setpoints.model_dump(exclude_none=True).items():
            low, high, unit = SETPOINT_LIMITS[field]
            require_range(self, field, value, low=low, high=high, unit=unit)
        args = [_ua.double(getattr(setpoints, field)) for field in _SETPOINT_ORDER]
        with self.setpoint_watch.changing():
            answer = Setpoints.model_validate(
                await self._run("SetSetpoints", args, "set_setpoints")
            )
        self.setpoint_watch.own(setpoints, answer)
        return answer

    async def seed(
        self, source_container_id: str, volume_ml: float, medium_ml: float
    ) -> CultureVolume:
        args = [_ua.text(source_container_id), _ua.double(volume_ml), _ua.double(medium_ml)]
        return CultureVolume.model_validate(await self._run("Seed", args, "seed"))

    async def add_reagent(self, reagent: Reagent) -> CultureVolume:
        if reagent.agents or reagent.to_medium_supply:
            raise InstrumentError(
                f"{self.interface_name} {self.identity.serial}: the OPC UA bioreactor does not "
                f"carry a reagent's agents or medium supply ({reagent.name!r}); nothing was sent"
            )
        args = [
            _ua.text(reagent.name), _ua.text(reagent.kind), _ua.double(reagent.volume_ml),
            _ua.text(reagent.lot), _ua.text(reagent.target_cells), _ua.double(reagent.moi),
        ]  # fmt: skip
        return CultureVolume.model_validate(await self._run("AddReagent", args, "add_reagent"))

    async def feed(self, medium_ml: float) -> CultureVolume:
        return CultureVolume.model_validate(
            await self._run("Feed", [_ua.double(medium_ml)], "feed")
        )

    async def draw_sample(self, volume_ml: float) -> Sample:
        result = await self._run("DrawSample", [_ua.double(volume_ml)], "draw_sample")
        return Sample.model_validate(result)

    async def harvest(self, target_container_id: str) -> HarvestResult:
        result = await self._run("Harvest", [_ua.text(target_container_id)], "harvest")
        return HarvestResult.model_validate(result)
