"""What every simulated instrument shares: the world, its own random stream, faults."""

from __future__ import annotations

from typing import Any

from cellauto.errors import InstrumentError
from cellauto.instruments.base import Instrument, InstrumentIdentity
from cellauto.sim.faults import (
    CommandFailure,
    Disconnect,
    Fault,
    FaultEntry,
    FaultLedger,
    FaultOutcome,
    FaultState,
    SensorDrift,
)
from cellauto.sim.world import SimWorld

__all__ = ["SIM_FIRMWARE", "SIM_VENDOR", "SimInstrument", "sim_identity"]

SIM_VENDOR = "cellauto-sim"
SIM_FIRMWARE = "sim-1.0"


def sim_identity(model: str, serial: str) -> InstrumentIdentity:
    return InstrumentIdentity(
        vendor=SIM_VENDOR, model=model, serial=serial, firmware=SIM_FIRMWARE, adapter="in-process"
    )


class SimInstrument(Instrument):
    """Mixin placed before the interface: ``class SimX(SimInstrument, X)``.

    An :class:`Instrument` itself, so that a simulator is typed as the instrument it
    is; ``X`` comes after it in the MRO and provides the interface and its name.
    """

    #: Measured values a SensorDrift fault may act on (the names ``measured`` is given).
    DRIFT_FIELDS: frozenset[str] = frozenset()

    #: Process fault kinds this instrument marks in its ledger when they act; the
    #: others' outcome stays unknown at the end of a run (never reported as unfired).
    MARKED_FAULTS: tuple[type, ...] = ()

    def __init__(self, world: SimWorld, identity: InstrumentIdentity, **kwargs: Any) -> None:
        super().__init__(identity, **kwargs)
        self.world = world
        self.rng = world.spawn_rng()
        self.faults = FaultState(f"{self.interface_name} {identity.serial}")
        self.ledger = FaultLedger(self.faults.where)

    @property
    def where(self) -> str:
        return self.faults.where

    def inject(self, fault: Fault) -> None:
        """Arm a fault (see :mod:`cellauto.sim.faults`)."""
        if isinstance(fault, SensorDrift) and fault.field not in self.DRIFT_FIELDS:
            fields = ", ".join(sorted(self.DRIFT_FIELDS)) or "none"
            raise InstrumentError(
                f"{self.where}: no sensor {fault.field!r} can drift; drifting sensors: {fields}"
            )
        now_h = self.world.elapsed_h()
        if not self.faults.arm(fault, now_h):
            self.inject_process_fault(fault)
        self.ledger.arm(fault, now_h)

    def inject_process_fault(self, fault: Fault) -> None:
        """Instruments that can suffer process faults override this."""
        raise InstrumentError(f"{self.where}: a {type(self).__name__} cannot suffer {fault.kind}")

    def guard(self, method: str, *, command: bool) -> None:
        """Raise the armed generic faults (call first in every simulated method)."""
        now_h = self.world.elapsed_h()
        left = [remaining for _, remaining, _ in self.faults.failures]
        try:
            self.faults.check(now_h, method=method, is_command=command)
        except InstrumentError:
            self._mark_generic(now_h, method, left)
            raise

    def _mark_generic(self, now_h: float, method: str, left: list[int]) -> None:
        """Mark the generic fault that just raised: a disconnect, or the failure whose
        count of commands left went down (``left``: the counts before the call)."""
        for disconnect in self.ledger.active(Disconnect, now_h):
            self.ledger.fired(self.ledger.entry_of(disconnect), now_h, "no answer")
            return
        failures = [e for e in self.ledger.entries if isinstance(e.fault, CommandFailure)]
        for entry, before, (_, after, _) in zip(failures, left, self.faults.failures, strict=True):
            if after < before:
                fault = entry.fault
                count = fault.count if isinstance(fault, CommandFailure) else 1
                self.ledger.fired(entry, now_h, f"{method} failed ({count - after} of {count})")
                return

    def measured(self, field: str, value: float) -> float:
        """``value`` as the (possibly drifting) sensor reports it."""
        now_h = self.world.elapsed_h()
        drifted = self.faults.drifted(field, value, now_h)
        if drifted != value:
            for entry in self.ledger.entries:
                fault = entry.fault
                drifting = isinstance(fault, SensorDrift) and fault.field == field
                if drifting and entry.starts_h <= now_h:
                    self.ledger.fired(entry, now_h, f"{field} drifted")
        return drifted

    def mark_fired(self, fault: Fault, at_h: float, effect: str) -> None:
        """Mark that ``fault`` acted (a fault armed past :meth:`inject`, straight through
        ``inject_process_fault``, has no ledger entry and is not marked)."""
        for entry in self.ledger.entries:
            if entry.fault is fault:
                self.ledger.fired(entry, at_h, effect)
                return

    def why_never(self, entry: FaultEntry) -> str | None:
        """Why ``entry`` never took effect (instruments override; None: the default)."""
        return None

    def close_faults(self, end_h: float) -> list[FaultOutcome]:
        """One outcome per fault armed here, at the end of a run (``end_h``)."""
        tracked = (Disconnect, CommandFailure, SensorDrift, *self.MARKED_FAULTS)
        return self.ledger.close(
            end_h, self.why_never, tracked=lambda entry: isinstance(entry.fault, tracked)
        )
