"""Simulated vapour-phase liquid-nitrogen storage freezer.

Integrated lazily (no background task) from the last time it was looked at, in steps of
at most 5 min of process time:

* LN2 evaporates at ``evaporation_pct_per_h`` (percentage points of the level per hour).
  With autofill on, filling starts when the level falls below ``autofill_low_pct`` and
  runs at ``fill_rate_pct_per_h`` until ``autofill_high_pct``.
* The vapour-phase temperature relaxes (time constant ``temperature_time_constant_h``)
  towards an equilibrium set by the level: a monotonic piecewise-linear curve through
  :data:`LEVEL_TEMPERATURE_CURVE` - about -190 °C when well filled, -160 °C at 20 %,
  -150 °C at 15 %, warmer below and ambient when dry.
* :class:`LN2LevelDrop` drops the level by ``drop_pct`` points at ``at_h`` and may switch
  autofill off. Conditions carry an alarm when the temperature is above -150 °C or the
  level below ``alarm_level_pct``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator

import anyio
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from cellauto.errors import InstrumentError
from cellauto.instruments.base import require_range
from cellauto.instruments.cryo_storage import (
    CryoStorage,
    StorageConditions,
    StoragePosition,
    StoredItem,
)
from cellauto.sim.base import SimInstrument, sim_identity
from cellauto.sim.faults import Fault, FaultOutcome, LN2LevelDrop
from cellauto.sim.world import SimWorld

__all__ = [
    "LEVEL_TEMPERATURE_CURVE",
    "SimCryoStorage",
    "StorageModel",
    "equilibrium_temperature_c",
]

log = logging.getLogger(__name__)

#: (LN2 level %, equilibrium vapour-phase temperature °C), level ascending.
LEVEL_TEMPERATURE_CURVE: tuple[tuple[float, float], ...] = (
    (0.0, 20.0),
    (5.0, -100.0),
    (10.0, -135.0),
    (15.0, -150.0),
    (20.0, -160.0),
    (40.0, -182.0),
    (60.0, -190.0),
    (100.0, -195.0),
)
_LEVELS = np.array([level for level, _ in LEVEL_TEMPERATURE_CURVE])
_TEMPERATURES = np.array([temperature for _, temperature in LEVEL_TEMPERATURE_CURVE])
STEP_H = 5.0 / 60.0


def equilibrium_temperature_c(ln2_level_pct: float) -> float:
    """Vapour-phase temperature the freezer settles at for a given LN2 level."""
    return float(np.interp(ln2_level_pct, _LEVELS, _TEMPERATURES))


class StorageModel(BaseModel):
    """Parameters of the simulated storage freezer."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    initial_ln2_level_pct: float = Field(85.0, ge=0, le=100)
    evaporation_pct_per_h: float = Field(1.5 / 24.0, ge=0)
    autofill_low_pct: float = Field(40.0, ge=0, le=100)
    autofill_high_pct: float = Field(90.0, ge=0, le=100)
    fill_rate_pct_per_h: float = Field(30.0, gt=0)
    alarm_level_pct: float = Field(20.0, ge=0, le=100)
    temperature_time_constant_h: float = Field(0.5, gt=0)
    temperature_noise_c: float = Field(0.2, ge=0)
    racks: tuple[str, ...] = ("A", "B", "C", "D", "E", "F")
    boxes_per_rack: int = Field(12, ge=1)
    slots_per_box: int = Field(25, ge=1)
    handling_s: float = Field(60.0, ge=0)


class SimCryoStorage(SimInstrument, CryoStorage):
    """A vapour-phase LN2 freezer with autofill (see the module for the model)."""

    DRIFT_FIELDS = frozenset({"temperature_c", "ln2_level_pct"})
    MARKED_FAULTS = (LN2LevelDrop,)

    def __init__(
        self, world: SimWorld, serial: str = "LN2-0001", *, model: StorageModel | None = None
    ) -> None:
        super().__init__(world, sim_identity("SimCryo VP", serial))
        self.model = model or StorageModel()
        self._level_pct = self.model.initial_ln2_level_pct
        self._temperature_c = equilibrium_temperature_c(self._level_pct)
        self._autofill_on = True
        self._filling = False
        self._t_h = world.elapsed_h()
        self._drops: list[LN2LevelDrop] = []  # pending, by time
        self._items: dict[str, StoredItem] = {}

    def inject_process_fault(self, fault: Fault) -> None:
        if not isinstance(fault, LN2LevelDrop):
            super().inject_process_fault(fault)
            return
        self._advance()
        at_h = self.world.elapsed_h() if fault.at_h is None else fault.at_h
        self._drops.append(fault.model_copy(update={"at_h": at_h}))
        self._drops.sort(key=lambda drop: drop.at_h or 0.0)
        log.info("%s: LN2 level drop of %g %% armed at hour %.3f", self.where, fault.drop_pct, at_h)

    async def conditions(self) -> StorageConditions:
        self.guard("conditions", command=False)
        return self._conditions()

    async def store(self, container_id: str, position: StoragePosition) -> StoredItem:
        self.guard("store", command=True)
        container = self.world.container(container_id, where=self.where)
        m = self.model
        if position.rack not in m.racks:
            raise InstrumentError(
                f"{self.where}: no rack {position.rack!r}; racks: {', '.join(m.racks)}"
            )
        require_range(self, "position.box", position.box, low=1, high=m.boxes_per_rack)
        require_range(self, "position.slot", position.slot, low=1, high=m.slots_per_box)
        if container_id in self._items:
            where = self._items[container_id].position
            raise InstrumentError(f"{self.where}: {container_id!r} is already stored at {where}")
        for item in self._items.values():
            if item.position == position:
                raise InstrumentError(
                    f"{self.where}: {position} is occupied by {item.container_id!r}; "
                    "choose a free position"
                )
        now = self._conditions()
        if now.temperature_c > self.MAX_STORAGE_TEMPERATURE_C:
            raise InstrumentError(
                f"{self.where}: storage temperature {now.temperature_c:.1f} °C is above the "
                f"limit {self.MAX_STORAGE_TEMPERATURE_C:g} °C for vapour-phase storage; "
                f"do not store {container_id!r} here until the freezer is cold again"
            )
        item = StoredItem(
            container_id=container_id,
            position=position,
            stored_at_process_time_s=self.world.clock.now_s(),
        )
        self._items[container_id] = item  # reserved while the door is open
        try:
            await anyio.sleep(m.handling_s)
        except BaseException:
            del self._items[container_id]
            raise
        container.history.append(f"stored in {self.where} at {position}")
        log.info("%s: stored %r at %s", self.where, container_id, position)
        return item

    async def retrieve(self, container_id: str) -> StoredItem:
        self.guard("retrieve", command=True)
        item = self._items.get(container_id)
        if item is None:
            stored = ", ".join(self._items) or "nothing"
            raise InstrumentError(
                f"{self.where}: {container_id!r} is not stored here; stored: {stored}"
            )
        await anyio.sleep(self.model.handling_s)
        del self._items[container_id]
        if (container := self.world.containers.get(container_id)) is not None:
            container.history.append(f"retrieved from {self.where} at {item.position}")
        log.info("%s: retrieved %r from %s", self.where, container_id, item.position)
        return item

    async def inventory(self) -> list[StoredItem]:
        self.guard("inventory", command=False)
        return list(self._items.values())

    def model_conditions(self) -> StorageConditions:
        """The model's state when it was last looked at, without sensor noise; changes nothing.

        What a display shows between readings (a served freezer's first values): no
        noise is drawn and the model is not integrated to now, so the readings a run
        takes afterwards are those of a freezer nobody looked at.
        """
        m = self.model
        temperature = self.measured("temperature_c", self._temperature_c)
        level = min(100.0, max(0.0, self.measured("ln2_level_pct", self._level_pct)))
        return StorageConditions(
            temperature_c=temperature,
            ln2_level_pct=level,
            autofill_on=self._autofill_on,
            alarm=self._alarm(temperature, level, m.alarm_level_pct),
            process_time_s=self.world.clock.now_s() - 3600.0 * (self.world.elapsed_h() - self._t_h),
        )

    async def conditions_stream(self, interval_s: float) -> AsyncIterator[StorageConditions]:
        self.guard("conditions_stream", command=False)
        require_range(self, "interval_s", interval_s, low=1.0, unit="s")
        while True:
            self.guard("conditions_stream", command=False)
            yield self._conditions()
            await anyio.sleep(interval_s)

    def _conditions(self) -> StorageConditions:
        self._advance()
        m = self.model
        noise = float(self.rng.normal(0.0, m.temperature_noise_c))
        temperature = self.measured("temperature_c", self._temperature_c + noise)
        level = min(100.0, max(0.0, self.measured("ln2_level_pct", self._level_pct)))
        return StorageConditions(
            temperature_c=temperature,
            ln2_level_pct=level,
            autofill_on=self._autofill_on,
            alarm=self._alarm(temperature, level, m.alarm_level_pct),
            process_time_s=self.world.clock.now_s(),
        )

    def _alarm(self, temperature_c: float, level_pct: float, alarm_level_pct: float) -> str | None:
        alarms = []
        if temperature_c > self.MAX_STORAGE_TEMPERATURE_C:
            alarms.append(
                f"temperature {temperature_c:.1f} °C above {self.MAX_STORAGE_TEMPERATURE_C:g} °C"
            )
        if level_pct < alarm_level_pct:
            alarms.append(f"LN2 level {level_pct:.1f} % below {alarm_level_pct:g} %")
        return "; ".join(alarms) or None

    def _advance(self) -> None:
        """Integrate level and temperature from the last look to now."""
        now_h = self.world.elapsed_h()
        while True:
            while self._drops and (self._drops[0].at_h or 0.0) <= self._t_h:
                self._apply(self._drops.pop(0))
            if self._t_h >= now_h - 1e-12:
                return
            next_h = min(now_h, self._t_h + STEP_H)
            if self._drops:
                next_h = min(next_h, self._drops[0].at_h or 0.0)
            self._step(next_h - self._t_h)
            self._t_h = next_h

    def _step(self, dt_h: float) -> None:
        m = self.model
        if self._filling:
            self._level_pct += (m.fill_rate_pct_per_h - m.evaporation_pct_per_h) * dt_h
            if self._level_pct >= m.autofill_high_pct or not self._autofill_on:
                self._filling = False
                self._level_pct = min(self._level_pct, m.autofill_high_pct)
        else:
            self._level_pct = max(0.0, self._level_pct - m.evaporation_pct_per_h * dt_h)
            if self._autofill_on and self._level_pct < m.autofill_low_pct:
                self._filling = True
                log.info("%s: autofill started at %.1f %%", self.where, self._level_pct)
        target = equilibrium_temperature_c(self._level_pct)
        relax = math.exp(-dt_h / m.temperature_time_constant_h)
        self._temperature_c = target + (self._temperature_c - target) * relax

    def close_faults(self, end_h: float) -> list[FaultOutcome]:
        self._advance()  # a drop due before the end acts even if nobody looked since
        return super().close_faults(end_h)

    def _apply(self, drop: LN2LevelDrop) -> None:
        for entry in self.ledger.entries:  # ``drop`` is the armed fault with its hour set
            fault = entry.fault
            same = isinstance(fault, LN2LevelDrop) and fault.drop_pct == drop.drop_pct
            if same and not entry.fired and entry.starts_h == drop.at_h:
                self.ledger.fired(entry, self._t_h, f"LN2 level -{drop.drop_pct:g} points")
                break
        self._level_pct = max(0.0, self._level_pct - drop.drop_pct)
        if drop.disable_autofill:
            self._autofill_on = self._filling = False
        log.warning(
            "%s: LN2 level dropped by %g %% to %.1f %%%s",
            self.where,
            drop.drop_pct,
            self._level_pct,
            "; autofill off" if drop.disable_autofill else "",
        )
