"""The simulated process line: every simulated instrument, one world, one seed."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import cast

from cellauto.clock import Clock
from cellauto.errors import EquipmentError
from cellauto.instruments.base import Instrument
from cellauto.instruments.line import Line
from cellauto.protocols.containers import batch_identities
from cellauto.protocols.definition import Protocol
from cellauto.protocols.params import Params
from cellauto.protocols.runner import validate_request
from cellauto.sim.base import SimInstrument
from cellauto.sim.bioreactor import SimBioreactor
from cellauto.sim.counter import SimCellCounter
from cellauto.sim.cytometer import SimFlowCytometer
from cellauto.sim.dry_shipper import SimDryShipper
from cellauto.sim.faults import Fault
from cellauto.sim.freezer import SimControlledRateFreezer
from cellauto.sim.material import Container
from cellauto.sim.printer import SimZplPrinter
from cellauto.sim.processor import SimCellProcessor
from cellauto.sim.scanner import SimBarcodeScanner
from cellauto.sim.starting_material import starting_materials
from cellauto.sim.storage import SimCryoStorage
from cellauto.sim.world import SimWorld

__all__ = ["SIMULATORS", "SimLine", "build_sim_line", "sim_line_for_protocol"]

Factory = Callable[[SimWorld, str], SimInstrument]

#: Simulated instrument classes; each serves the interfaces it implements.
SIMULATORS: list[type[SimInstrument]] = [
    SimBarcodeScanner,
    SimCellCounter,
    SimBioreactor,
    SimCellProcessor,
    SimFlowCytometer,
    SimControlledRateFreezer,
    SimCryoStorage,
    SimDryShipper,
    SimZplPrinter,
]


def simulators() -> list[type[SimInstrument]]:
    """Every simulated instrument class (PyLabRobot's is imported on first use: it is slow)."""
    from cellauto.sim.liquid_handler import SimLiquidHandler

    return [*SIMULATORS, SimLiquidHandler]


class SimLine:
    """A simulated line: instruments created on demand, one per equipment name.

    ``line_for(protocol.equipment())`` gives the :class:`Line` a protocol runs on;
    ``inject("bioreactor", Contamination(at_h=120))`` arms a fault on the instrument
    behind an equipment name.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        seed: int | None = None,
        materials: list[Container] | None = None,
        name: str = "sim",
    ) -> None:
        self.world = SimWorld(clock, seed=seed)
        self.name = name
        self.equipment: dict[str, SimInstrument] = {}
        self.line: Line | None = None
        for container in materials or []:
            self.world.add_container(container)

    def _create(self, key: str, interface: type[Instrument], index: int) -> SimInstrument:
        found = [s for s in SIMULATORS if issubclass(s, interface)]
        for simulator in found or simulators():  # PyLabRobot's only when no other serves
            if issubclass(simulator, interface):
                prefix = "".join(ch for ch in simulator.__name__[3:] if ch.isupper())
                make = cast(Factory, simulator)  # every simulator is Sim*(world, serial)
                return make(self.world, f"{prefix}-{index:04d}")
        supported = ", ".join(sorted(s.interface_name for s in simulators()))
        raise EquipmentError(
            f"no simulated instrument for {key!r} ({interface.__name__}); "
            f"simulated interfaces: {supported}"
        )

    def line_for(self, needed: Mapping[str, type[Instrument]]) -> Line:
        """The line for a protocol's equipment (instruments made once per name)."""
        for index, (key, interface) in enumerate(sorted(needed.items()), start=1):
            if key not in self.equipment:
                self.equipment[key] = self._create(key, interface, index)
        self.line = Line(self.name, dict(self.equipment), simulated=True)
        return self.line

    def inject(self, equipment: str, fault: Fault) -> None:
        """Arm ``fault`` on the instrument behind ``equipment``."""
        try:
            instrument = self.equipment[equipment]
        except KeyError:
            known = ", ".join(self.equipment) or "none yet (call line_for first)"
            raise EquipmentError(f"no simulated equipment {equipment!r}; known: {known}") from None
        instrument.inject(fault)


def build_sim_line(
    needed: Mapping[str, type[Instrument]],
    *,
    clock: Clock,
    seed: int | None = None,
    materials: list[Container] | None = None,
    name: str = "sim",
) -> tuple[Line, SimLine]:
    """A simulated line for ``needed``; returns the Line and the SimLine behind it."""
    sim = SimLine(clock=clock, seed=seed, materials=materials, name=name)
    return sim.line_for(needed), sim


def sim_line_for_protocol(
    protocol: Protocol,
    params: Params,
    *,
    clock: Clock,
    seed: int | None = None,
    name: str = "sim",
) -> SimLine:
    """The simulated line a protocol runs on, with its labelled starting materials.

    The run request is validated against it (parameters, equipment, estimates), so
    nothing needs to be opened or written before a request is known to be good.
    """
    batch = batch_identities(protocol, params)
    materials = starting_materials(protocol.inputs, params, batch)
    sim = SimLine(clock=clock, seed=seed, materials=materials, name=name)
    sim.world.identities.update(batch)
    validate_request(protocol, sim.line_for(protocol.equipment()), params)
    return sim
