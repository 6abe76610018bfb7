"""The view of an instrument's fault ledger a culture reads (issue 14, design §2).

A :class:`~cellauto.sim.culture.Culture` gets a :class:`ProcessFaults` from the
instrument holding it when it is made, so every culture the instrument ever holds
sees every process fault whose window covers its time, and marks the fault fired.
Not yet used by the bioreactor: faults still act through its own bookkeeping.
"""

from __future__ import annotations

from cellauto.sim.faults import Contamination, FaultLedger, TemperatureExcursion

__all__ = ["ProcessFaults"]


class ProcessFaults:
    """The process faults of one instrument as its culture sees them.

    ``marking`` False: a view that never marks a fault fired (process values read for
    a snapshot must not count as the fault acting on the cells).
    """

    def __init__(self, ledger: FaultLedger, *, marking: bool = True) -> None:
        self.ledger = ledger
        self.marking = marking

    def copy(self, *, marking: bool = False) -> ProcessFaults:
        return ProcessFaults(self.ledger, marking=marking)

    def temperature_offset_c(self, at_h: float) -> float:
        """The sum of the temperature excursions acting at ``at_h`` (°C)."""
        total = 0.0
        for fault in self.ledger.active(TemperatureExcursion, at_h):
            total += fault.delta_c
            self._mark(fault, at_h, f"culture {fault.delta_c:+.1f} °C")
        return total

    def contamination(self, at_h: float) -> float | None:
        """The death rate per hour of a contamination acting at ``at_h``; None: clean."""
        rates = []
        for fault in self.ledger.active(Contamination, at_h):
            rates.append(fault.death_rate_per_h)
            self._mark(fault, at_h, "culture contaminated")
        return max(rates) if rates else None

    def _mark(self, fault: TemperatureExcursion | Contamination, at_h: float, effect: str) -> None:
        if self.marking:
            self.ledger.fired(self.ledger.entry_of(fault), at_h, effect)
