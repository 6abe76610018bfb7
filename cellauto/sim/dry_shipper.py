"""Simulated LN2 dry shipper with a data logger.

Integrated lazily (no background task) from the last time it was looked at; every
``reading_interval_min`` of process time from its start the logger takes a reading:

* While its charge lasts (``hold_time_h`` x ``initial_charge_pct`` / 100 from its
  start) the well holds about ``holding_temperature_c`` (-190 °C), drifting up by
  ``drift_c_per_day`` as the charge evaporates. When the charge is spent it warms at
  ``warming_rate_c_per_h`` towards ambient.
* An open lid (``load``/``unload`` open it for ``handling_s``; :class:`ShipperLidOpen`
  for minutes) warms the well at ``lid_open_rate_c_per_min``; :class:`ShipperWarming`
  at its ``rate_c_per_h`` while it lasts. Once the lid is shut and the fault over, that
  extra warmth decays with ``recovery_time_constant_h`` (the charge cools it back).
* Each reading is the well temperature plus seeded noise (``temperature_noise_c``).
* ``charge()`` refills it with LN2 (it takes ``charge_min``): a full charge counts from
  then, and a well that had warmed cools back to its holding temperature with
  ``recovery_time_constant_h``.
"""

from __future__ import annotations

import bisect
import logging
import math
from array import array
from datetime import UTC, datetime

import anyio
from pydantic import BaseModel, ConfigDict, Field

from cellauto.errors import InstrumentError
from cellauto.instruments.dry_shipper import (
    DryShipper,
    LoggerReading,
    ShipperIdentity,
    ShipperStatus,
)
from cellauto.sim.base import SIM_FIRMWARE, SIM_VENDOR, SimInstrument
from cellauto.sim.faults import Fault, ShipperLidOpen, ShipperWarming
from cellauto.sim.world import SimWorld

__all__ = ["ShipperModel", "SimDryShipper"]

log = logging.getLogger(__name__)


class ShipperModel(BaseModel):
    """Parameters of the simulated dry shipper."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hold_time_h: float = Field(240.0, gt=0, description="how long a full charge lasts")
    initial_charge_pct: float = Field(100.0, ge=0, le=100)
    holding_temperature_c: float = -190.0
    drift_c_per_day: float = Field(0.5, ge=0)
    warming_rate_c_per_h: float = Field(4.0, gt=0, description="once the charge is spent")
    charge_min: float = Field(20.0, ge=0, description="how long a refill with LN2 takes")
    ambient_c: float = 20.0
    lid_open_rate_c_per_min: float = Field(2.0, ge=0)
    recovery_time_constant_h: float = Field(0.25, gt=0)
    reading_interval_min: float = Field(5.0, gt=0)
    temperature_noise_c: float = Field(0.3, ge=0)
    handling_s: float = Field(60.0, ge=0, description="lid open per load or unload")


class SimDryShipper(SimInstrument, DryShipper):
    """A charged dry shipper and its logger (see the module for the model)."""

    DRIFT_FIELDS = frozenset({"temperature_c"})

    def __init__(
        self,
        world: SimWorld,
        serial: str = "DS-0001",
        *,
        model: ShipperModel | None = None,
        logger_serial: str | None = None,
    ) -> None:
        identity = ShipperIdentity(
            vendor=SIM_VENDOR,
            model="SimDryShipper LN2",
            serial=serial,
            firmware=SIM_FIRMWARE,
            adapter="in-process",
            logger_serial=logger_serial or f"LOG-{serial}",
        )
        super().__init__(world, identity)
        self.model = model or ShipperModel()
        m = self.model
        self._start_h = world.elapsed_h()
        self._epoch_s = world.clock.now_s() - 3600.0 * self._start_h  # process s at hour 0
        self._charged_h = self._start_h  # when the charge in it now was put in
        self._spent_h = self._start_h + m.hold_time_h * m.initial_charge_pct / 100.0
        self._t_h = self._start_h
        self._excess_c = 0.0  # warmth above the holding curve (lid, faults)
        self._lid: list[tuple[float, float]] = []  # (from_h, until_h)
        self._warming: list[tuple[float, float, float]] = []  # (from_h, until_h, c_per_h)
        self._next_k = 0
        # The log, one reading every few minutes from the start (~2,700 over a CAR-T batch):
        # two float arrays (16 bytes a reading), LoggerReadings made only for what is asked.
        self._reading_s = array("d")  # process time (epoch s) of each reading, for bisect
        self._reading_c = array("d")  # its temperature, as the logger rounds it
        self._contents: list[str] = []

    # -- faults ------------------------------------------------------------------------
    def inject_process_fault(self, fault: Fault) -> None:
        if not isinstance(fault, ShipperWarming | ShipperLidOpen):
            super().inject_process_fault(fault)
            return
        self._advance()
        at_h = self.world.elapsed_h() if fault.at_h is None else fault.at_h
        if isinstance(fault, ShipperWarming):
            until = math.inf if fault.duration_h is None else at_h + fault.duration_h
            self._warming.append((at_h, until, fault.rate_c_per_h))
            rate = fault.rate_c_per_h
            log.info("%s: warming at %g °C/h armed at hour %.3f", self.where, rate, at_h)
        else:
            self._lid.append((at_h, at_h + fault.duration_min / 60.0))
            log.info("%s: lid open %g min armed at hour %.3f", self.where, fault.duration_min, at_h)

    # -- interface ---------------------------------------------------------------------
    async def status(self) -> ShipperStatus:
        self.guard("status", command=False)
        self._advance()
        m = self.model
        now_h = self.world.elapsed_h()
        remaining_h = max(0.0, self._spent_h - now_h)
        temperature = round(self.measured("temperature_c", self._temperature_c(now_h)), 1)
        alarms = []
        if temperature > self.MAX_TEMPERATURE_C:
            alarms.append(f"temperature {temperature:.1f} °C above {self.MAX_TEMPERATURE_C:g} °C")
        if remaining_h <= 0:
            alarms.append("LN2 charge spent")
        return ShipperStatus(
            lid_open=self._lid_open(now_h),
            ln2_charge_pct=round(min(100.0, 100.0 * remaining_h / m.hold_time_h), 2),
            hold_time_remaining_h=round(remaining_h, 3),
            temperature_c=temperature,
            alarm="; ".join(alarms) or None,
            process_time_s=self.world.clock.now_s(),
        )

    async def logger_readings(
        self, since: datetime, *, most: int | None = None
    ) -> list[LoggerReading]:
        """The readings after ``since``; ``most``: at most that many, the first (the SCPI
        server's page; None: all)."""
        self.guard("logger_readings", command=False)
        if since.tzinfo is None:
            raise InstrumentError(
                f"{self.where}: logger_readings needs a timezone-aware time, not {since!r}"
            )
        self._advance()
        start = bisect.bisect_right(self._reading_s, since.timestamp())
        end = len(self._reading_s) if most is None else min(len(self._reading_s), start + most)
        return [
            LoggerReading(time=datetime.fromtimestamp(at_s, tz=UTC), temperature_c=temperature)
            for at_s, temperature in zip(
                self._reading_s[start:end], self._reading_c[start:end], strict=True
            )
        ]

    async def load(self, container_id: str) -> list[str]:
        self.guard("load", command=True)
        if container_id in self._contents:
            raise InstrumentError(f"{self.where}: {container_id!r} is already in the shipper")
        await self._open_lid()
        self._contents.append(container_id)
        if (container := self.world.containers.get(container_id)) is not None:
            container.history.append(f"loaded into {self.where}")
        log.info("%s: loaded %r", self.where, container_id)
        return list(self._contents)

    async def unload(self, container_id: str) -> list[str]:
        self.guard("unload", command=True)
        if container_id not in self._contents:
            held = ", ".join(self._contents) or "nothing"
            raise InstrumentError(
                f"{self.where}: {container_id!r} is not in the shipper; it holds: {held}"
            )
        await self._open_lid()
        self._contents.remove(container_id)
        if (container := self.world.containers.get(container_id)) is not None:
            container.history.append(f"unloaded from {self.where}")
        log.info("%s: unloaded %r", self.where, container_id)
        return list(self._contents)

    async def contents(self) -> list[str]:
        self.guard("contents", command=False)
        return list(self._contents)

    async def charge(self) -> ShipperStatus:
        self.guard("charge", command=True)
        self._advance()
        now_h = self.world.elapsed_h()
        m = self.model
        await anyio.sleep(60.0 * m.charge_min)
        self._advance()
        now_h = self.world.elapsed_h()
        warmth = self._temperature_c(now_h) - m.holding_temperature_c
        self._charged_h, self._spent_h = now_h, now_h + m.hold_time_h
        self._excess_c = max(0.0, warmth)  # the new charge cools it back
        log.info("%s: charged with LN2 at hour %.3f", self.where, now_h)
        return await self.status()

    # -- model -------------------------------------------------------------------------
    async def _open_lid(self) -> None:
        """The lid is open for ``handling_s`` while a container goes in or out."""
        self._advance()
        now_h = self.world.elapsed_h()
        self._lid.append((now_h, now_h + self.model.handling_s / 3600.0))
        await anyio.sleep(self.model.handling_s)

    def _lid_open(self, at_h: float) -> bool:
        return any(start <= at_h < until for start, until in self._lid)

    def _holding_c(self, at_h: float) -> float:
        """The well's temperature with the lid shut and no fault, at hour ``at_h``."""
        m = self.model
        held_h = min(at_h, self._spent_h) - self._charged_h
        temperature = m.holding_temperature_c + m.drift_c_per_day * held_h / 24.0
        if at_h > self._spent_h:
            temperature += m.warming_rate_c_per_h * (at_h - self._spent_h)
        return min(m.ambient_c, temperature)

    def _temperature_c(self, at_h: float) -> float:
        return min(self.model.ambient_c, self._holding_c(at_h) + self._excess_c)

    def _rate_c_per_h(self, at_h: float) -> float:
        """Extra warming at ``at_h`` (open lid, faults); 0: the extra warmth decays."""
        rate = sum(r for start, until, r in self._warming if start <= at_h < until)
        if self._lid_open(at_h):
            rate += 60.0 * self.model.lid_open_rate_c_per_min
        return rate

    def _next_change_h(self, after_h: float) -> float:
        edges = [edge for start, until in self._lid for edge in (start, until)]
        edges += [edge for start, until, _ in self._warming for edge in (start, until)]
        return min((edge for edge in edges if edge > after_h + 1e-12), default=math.inf)

    def _advance(self) -> None:
        """Integrate the extra warmth from the last look to now, taking readings on the way."""
        now_h = self.world.elapsed_h()
        interval_h = self.model.reading_interval_min / 60.0
        while True:
            due_h = self._start_h + self._next_k * interval_h
            if due_h <= self._t_h + 1e-9 and due_h <= now_h + 1e-9:
                self._take_reading(due_h)
                continue
            if self._t_h >= now_h - 1e-12:
                return
            next_h = min(now_h, due_h, self._next_change_h(self._t_h))
            self._integrate(next_h - self._t_h, self._rate_c_per_h((self._t_h + next_h) / 2))
            self._t_h = next_h

    def _integrate(self, dt_h: float, rate_c_per_h: float) -> None:
        if rate_c_per_h > 0:
            self._excess_c += rate_c_per_h * dt_h
        else:
            self._excess_c *= math.exp(-dt_h / self.model.recovery_time_constant_h)

    def _take_reading(self, at_h: float) -> None:
        m = self.model
        at_s = self._epoch_s + 3600.0 * self._start_h + 60.0 * m.reading_interval_min * self._next_k
        noise = float(self.rng.normal(0.0, m.temperature_noise_c))
        value = self.faults.drifted("temperature_c", self._temperature_c(at_h) + noise, at_h)
        self._reading_s.append(at_s)
        self._reading_c.append(round(value, 2))
        self._next_k += 1
