"""Fault injection for simulated instruments.

Faults are pydantic models handed to :meth:`SimInstrument.inject` (or
``SimLine.inject(name, fault)``). Each takes effect at ``at_h`` hours of process
time after the simulated world started (``None``: at once) and is evaluated lazily
when the instrument is next used, so no background task is needed and a fault
lands at the same process time whatever the wall clock does.

Generic faults (every simulated instrument): :class:`Disconnect`,
:class:`CommandFailure`, :class:`SensorDrift`. Process faults, accepted only by the
instruments they concern: :class:`TemperatureExcursion` and :class:`Contamination`
(bioreactor), :class:`LN2LevelDrop` (cryostorage), :class:`PowerLoss` (controlled-rate
freezer), :class:`ShipperWarming` and :class:`ShipperLidOpen` (dry shipper),
:class:`MisprintLabel` and :class:`SmudgedLabel` (label printer),
:class:`WrongBagInView` (barcode scanner: the hand scanner of the line, so the
operators scanning at a hand-off see the wrong bag too). An instrument refuses a
fault it cannot suffer with a clear error.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from cellauto.errors import InstrumentError

__all__ = [
    "CommandFailure",
    "Contamination",
    "Disconnect",
    "Fault",
    "FaultEntry",
    "FaultLedger",
    "FaultOutcome",
    "FaultState",
    "FiredEffect",
    "LN2LevelDrop",
    "MisprintLabel",
    "PowerLoss",
    "QcFault",
    "SensorDrift",
    "ShipperLidOpen",
    "ShipperWarming",
    "SimFaultWarning",
    "SmudgedLabel",
    "TemperatureExcursion",
    "WrongBagInView",
]


class _Fault(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    at_h: float | None = Field(None, ge=0, description="process hours after the world started")


class Disconnect(_Fault):
    """The instrument does not answer for ``duration_h`` hours."""

    kind: Literal["disconnect"] = "disconnect"
    duration_h: float = Field(1.0, gt=0)


class CommandFailure(_Fault):
    """The next ``count`` commands (not queries) fail with ``message``."""

    kind: Literal["command_failure"] = "command_failure"
    count: int = Field(1, ge=1)
    message: str = "simulated command failure"


class SensorDrift(_Fault):
    """A measured value drifts by ``rate_per_h`` (its own unit per hour) from ``at_h``."""

    kind: Literal["sensor_drift"] = "sensor_drift"
    field: str
    rate_per_h: float


class TemperatureExcursion(_Fault):
    """The culture temperature departs by ``delta_c`` for ``duration_h`` hours."""

    kind: Literal["temperature_excursion"] = "temperature_excursion"
    delta_c: float = 5.0
    duration_h: float = Field(2.0, gt=0)


class Contamination(_Fault):
    """The culture is contaminated: viability collapses within about a day."""

    kind: Literal["contamination"] = "contamination"
    death_rate_per_h: float = Field(0.15, gt=0)


class LN2LevelDrop(_Fault):
    """The LN2 level drops by ``drop_pct`` points (a leak, a failed fill)."""

    kind: Literal["ln2_level_drop"] = "ln2_level_drop"
    drop_pct: float = Field(60.0, gt=0, le=100)
    disable_autofill: bool = True


class PowerLoss(_Fault):
    """Power is lost for ``duration_min`` minutes; the chamber warms meanwhile."""

    kind: Literal["power_loss"] = "power_loss"
    duration_min: float = Field(20.0, gt=0)


class ShipperWarming(_Fault):
    """A dry shipper's well warms at ``rate_c_per_h`` (a lost vacuum, a spent charge).

    For ``duration_h`` hours (None: until the end); then it cools back to its holding
    temperature while its charge lasts.
    """

    kind: Literal["shipper_warming"] = "shipper_warming"
    rate_c_per_h: float = Field(20.0, gt=0)
    duration_h: float | None = Field(None, gt=0)


class ShipperLidOpen(_Fault):
    """A dry shipper's lid is left open for ``duration_min`` minutes."""

    kind: Literal["shipper_lid_open"] = "shipper_lid_open"
    duration_min: float = Field(10.0, gt=0)


LabelSymbolName = Literal["din", "product", "identity"]


class MisprintLabel(_Fault):
    """The next ``count`` labels print ``data`` in the ``symbol`` barcode instead."""

    kind: Literal["misprint_label"] = "misprint_label"
    symbol: LabelSymbolName = "din"
    data: str = Field(min_length=1)
    count: int = Field(1, ge=1)


class SmudgedLabel(_Fault):
    """The next ``count`` labels have their ``symbol`` barcode rubbed off (unreadable)."""

    kind: Literal["smudged_label"] = "smudged_label"
    symbol: LabelSymbolName = "din"
    count: int = Field(1, ge=1)


class WrongBagInView(_Fault):
    """Scanning ``container`` reads the label of ``shows`` (the bag beside it)."""

    kind: Literal["wrong_bag_in_view"] = "wrong_bag_in_view"
    container: str = Field(min_length=1)
    shows: str = Field(min_length=1)


class QcFault(BaseModel):
    """A fault of the simulated QC laboratory (:mod:`cellauto.sim.qc`), not of an
    instrument, so not time-based: it changes the LIMS row of release test ``test``.

    ``fail``: out of specification (``value`` forces the LIMS value or text);
    ``missing``: no row; ``wrong_din``: the sample carries another batch's DIN;
    ``unauthorised``: the row's status is not authorised; ``borderline``: a pass within
    the test's borderline band. Armed through
    :meth:`SimulatedRun.qc_results(faults=...) <cellauto.sim.simulate.SimulatedRun.qc_results>`
    or ``cellauto sim qc --fault TEST:EFFECT[=VALUE]``, never through ``simulate(faults=)``
    (those go to the line's instruments)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["qc"] = "qc"
    test: str = Field(min_length=1)
    effect: Literal["fail", "missing", "wrong_din", "unauthorised", "borderline"]
    value: float | str | None = None


Fault = Annotated[
    Disconnect
    | CommandFailure
    | SensorDrift
    | TemperatureExcursion
    | Contamination
    | LN2LevelDrop
    | PowerLoss
    | ShipperWarming
    | ShipperLidOpen
    | MisprintLabel
    | SmudgedLabel
    | WrongBagInView,
    Field(discriminator="kind"),
]


class FaultState:
    """The generic faults armed on one simulated instrument."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.disconnects: list[tuple[float, float]] = []  # (from_h, until_h)
        self.failures: list[tuple[float, int, str]] = []  # (from_h, remaining, message)
        self.drifts: dict[str, tuple[float, float]] = {}  # field -> (from_h, rate_per_h)

    def arm(self, fault: _Fault, now_h: float) -> bool:
        """Arm a generic fault; returns False for a process fault (the instrument's job)."""
        start = now_h if fault.at_h is None else fault.at_h
        if isinstance(fault, Disconnect):
            self.disconnects.append((start, start + fault.duration_h))
        elif isinstance(fault, CommandFailure):
            self.failures.append((start, fault.count, fault.message))
        elif isinstance(fault, SensorDrift):
            self.drifts[fault.field] = (start, fault.rate_per_h)
        else:
            return False
        return True

    def check(self, now_h: float, *, method: str, is_command: bool) -> None:
        """Raise InstrumentError when the instrument is disconnected or fails commands."""
        for start, until in self.disconnects:
            if start <= now_h < until:
                raise InstrumentError(
                    f"{self.where}: no answer to {method} — instrument disconnected "
                    f"(simulated outage until process hour {until:.2f})"
                )
        if not is_command:
            return
        for index, (start, remaining, message) in enumerate(self.failures):
            if start <= now_h and remaining > 0:
                self.failures[index] = (start, remaining - 1, message)
                raise InstrumentError(f"{self.where}: {method} failed: {message}")

    def drifted(self, field: str, value: float, now_h: float) -> float:
        start, rate = self.drifts.get(field, (0.0, 0.0))
        return value + rate * max(0.0, now_h - start) if rate else value


# -- the ledger: what became of every armed fault -----------------------------------------
# Issue 14, §2 of its design. Every SimInstrument arms each fault in its ledger;
# generic faults still act through FaultState and are marked by SimInstrument, process
# faults act through the instrument's own code (the bioreactor's through ProcessFaults).

_F = TypeVar("_F", bound=_Fault)


def fault_window_h(fault: _Fault, starts_h: float) -> tuple[float, float]:
    """``(from_h, until_h)`` in which ``fault`` acts (until_h inf: it does not end)."""
    if isinstance(fault, Disconnect | TemperatureExcursion):
        return starts_h, starts_h + fault.duration_h
    if isinstance(fault, PowerLoss):
        return starts_h, starts_h + fault.duration_min / 60.0
    if isinstance(fault, ShipperWarming) and fault.duration_h is not None:
        return starts_h, starts_h + fault.duration_h
    return starts_h, math.inf


@dataclass
class FaultEntry:
    """One armed fault and what it did so far."""

    fault: _Fault
    armed_at_h: float
    starts_h: float
    """Its ``at_h``, or the hour it was armed (never the next culture's seeding)."""
    fired: list[tuple[float, str]] = field(default_factory=list)
    """``(process hour, effect)`` each time it acted, once per effect."""
    never: str | None = None
    """Why it never took effect (set when the ledger is closed)."""

    def covers(self, at_h: float) -> bool:
        start, until = fault_window_h(self.fault, self.starts_h)
        return start <= at_h < until


class FiredEffect(BaseModel):
    """One effect of a fault, at a process hour."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    at_h: float
    effect: str


class FaultOutcome(BaseModel):
    """What became of one armed fault: it fired (when, what) or never did (why)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    where: str = Field(description='the instrument: "Bioreactor BR-0001"')
    fault: Fault
    armed_at_h: float
    starts_h: float
    fired: list[FiredEffect] = Field(default_factory=list)
    never: str | None = None

    @property
    def took_effect(self) -> bool:
        return bool(self.fired)


class SimFaultWarning(UserWarning):
    """A fault armed on a simulated instrument never took effect (the message says why)."""


class FaultLedger:
    """Every fault armed on one simulated instrument, and what each did.

    Process faults live on the instrument (a time window), not on the culture or
    container it held when the fault was armed: each culture asks the ledger
    (:meth:`active`) and marks what it suffered (:meth:`fired`). At the end of a run
    :meth:`close` gives one :class:`FaultOutcome` per fault; an unfired one says why.
    """

    def __init__(self, where: str) -> None:
        self.where = where
        self.entries: list[FaultEntry] = []

    def arm(self, fault: _Fault, now_h: float) -> FaultEntry:
        """Record ``fault`` armed at ``now_h``; it starts at its ``at_h`` or now."""
        entry = FaultEntry(fault, now_h, now_h if fault.at_h is None else fault.at_h)
        self.entries.append(entry)
        return entry

    def active(self, kind: type[_F], at_h: float) -> list[_F]:
        """The faults of ``kind`` whose window covers ``at_h``, in arming order."""
        return [e.fault for e in self.entries if isinstance(e.fault, kind) and e.covers(at_h)]

    def entry_of(self, fault: _Fault) -> FaultEntry:
        """The entry of an armed ``fault`` (the same object :meth:`active` returned)."""
        for entry in self.entries:
            if entry.fault is fault:
                return entry
        raise KeyError(f"{self.where}: {type(fault).__name__} was not armed here")

    def fired(self, entry: FaultEntry, at_h: float, effect: str) -> None:
        """Mark that ``entry`` acted at ``at_h``; the same effect is recorded once."""
        if all(done != effect for _, done in entry.fired):
            entry.fired.append((at_h, effect))

    def close(
        self,
        end_h: float,
        why: Callable[[FaultEntry], str | None],
        *,
        tracked: Callable[[FaultEntry], bool] | None = None,
    ) -> list[FaultOutcome]:
        """One outcome per armed fault at the run's end (``end_h``). An unfired entry
        gets ``why(entry)``, or a default reason when that says nothing. An entry that
        ``tracked`` says is not marked by its instrument keeps ``never`` None: its
        outcome is unknown, never reported as unfired."""
        outcomes = []
        for entry in self.entries:
            known = tracked is None or tracked(entry)
            if known and not entry.fired and entry.never is None:
                entry.never = why(entry) or (
                    f"starts at {entry.starts_h:.1f} h, after the run ended at {end_h:.1f} h"
                    if entry.starts_h >= end_h
                    else f"the {self.where} never met it"
                )
            outcomes.append(
                FaultOutcome.model_validate(
                    {
                        "where": self.where,
                        "fault": entry.fault,
                        "armed_at_h": entry.armed_at_h,
                        "starts_h": entry.starts_h,
                        "fired": [FiredEffect(at_h=h, effect=e) for h, e in entry.fired],
                        "never": None if entry.fired else entry.never,
                    }
                )
            )
        return outcomes
