"""What every simulated instrument shares: the world, its own random stream, faults."""

from __future__ import annotations

from typing import Any

from cellauto.errors import InstrumentError
from cellauto.instruments.base import Instrument, InstrumentIdentity
from cellauto.sim.faults import Fault, FaultState, SensorDrift
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

    def __init__(self, world: SimWorld, identity: InstrumentIdentity, **kwargs: Any) -> None:
        super().__init__(identity, **kwargs)
        self.world = world
        self.rng = world.spawn_rng()
        self.faults = FaultState(f"{self.interface_name} {identity.serial}")

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
        if not self.faults.arm(fault, self.world.elapsed_h()):
            self.inject_process_fault(fault)

    def inject_process_fault(self, fault: Fault) -> None:
        """Instruments that can suffer process faults override this."""
        raise InstrumentError(f"{self.where}: a {type(self).__name__} cannot suffer {fault.kind}")

    def guard(self, method: str, *, command: bool) -> None:
        """Raise the armed generic faults (call first in every simulated method)."""
        self.faults.check(self.world.elapsed_h(), method=method, is_command=command)

    def measured(self, field: str, value: float) -> float:
        """``value`` as the (possibly drifting) sensor reports it."""
        return self.faults.drifted(field, value, self.world.elapsed_h())
