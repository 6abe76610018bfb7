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
from cellauto.records.simulation_info import SimulationInfo
from cellauto.sim.base import SimInstrument
from cellauto.sim.bioreactor import SimBioreactor
from cellauto.sim.counter import SimCellCounter
from cellauto.sim.cytometer import SimFlowCytometer
from cellauto.sim.dry_shipper import SimDryShipper
from cellauto.sim.faults import Fault
from cellauto.sim.freezer import SimControlledRateFreezer
from cellauto.sim.grex import SimGRex
from cellauto.sim.material import Container
from cellauto.sim.patients import (
    MODEL_VERSION,
    PatientChoice,
    PatientProfile,
    Population,
    population_for_material,
    resolve_patient,
)
from cellauto.sim.printer import SimZplPrinter
from cellauto.sim.processor import SimCellProcessor
from cellauto.sim.scanner import SimBarcodeScanner
from cellauto.sim.starting_material import starting_materials
from cellauto.sim.storage import SimCryoStorage
from cellauto.sim.thaw import SimThawer
from cellauto.sim.world import SimWorld

__all__ = [
    "SIMULATORS",
    "SimLine",
    "build_sim_line",
    "protocol_population",
    "sim_line_for_protocol",
]

Factory = Callable[[SimWorld, str], SimInstrument]

#: Simulated instrument classes; each serves the interfaces it implements.
SIMULATORS: list[type[SimInstrument]] = [
    SimBarcodeScanner,
    SimCellCounter,
    SimBioreactor,
    SimGRex,  # after the bag: a Bioreactor gets the bag, a StaticCultureVessel the G-Rex
    SimCellProcessor,
    SimFlowCytometer,
    SimControlledRateFreezer,
    SimCryoStorage,
    SimDryShipper,
    SimZplPrinter,
    SimThawer,
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

    ``patient``: the patient whose cells the line receives (:mod:`cellauto.sim.patients`):
    ``"drawn"`` (default) from ``population`` on the world's ``"patient"`` stream,
    ``"typical"`` (the population's median patient) or a :class:`PatientProfile`.
    Without a population and a profile the line has no patient (``self.patient`` None).
    """

    def __init__(
        self,
        *,
        clock: Clock,
        seed: int | None = None,
        materials: list[Container] | None = None,
        name: str = "sim",
        patient: PatientChoice = "drawn",
        population: Population | None = None,
    ) -> None:
        self.world = SimWorld(clock, seed=seed)
        self.name = name
        self.patient_choice = "given" if isinstance(patient, PatientProfile) else patient
        self.population = population
        rng = self.world.stream("patient") if patient == "drawn" else None
        #: The patient the line's starting material came from (None: no population).
        self.patient: PatientProfile | None = resolve_patient(patient, population, rng)
        self.world.patient = self.patient  # the bag's kinetics, the thawer's cryo-sensitivity
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
                unit = key.partition("@")[2]  # a unit of a pool (bioreactor@BR-01): its own
                return make(self.world, f"{prefix}-{unit}" if unit else f"{prefix}-{index:04d}")
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
        self.line.simulation = self.simulation_info()
        return self.line

    def simulation_info(self) -> SimulationInfo:
        """What ``run_started.simulation`` records of this line's patient."""
        patient = self.patient
        return SimulationInfo(
            population=patient.population if patient is not None else None,
            patient=patient.as_record() if patient is not None else None,
            patient_choice=self.patient_choice,
            model_versions={"patients": MODEL_VERSION},
        )

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
    patient: PatientChoice = "drawn",
    population: Population | None = None,
) -> tuple[Line, SimLine]:
    """A simulated line for ``needed``; returns the Line and the SimLine behind it."""
    sim = SimLine(
        clock=clock,
        seed=seed,
        materials=materials,
        name=name,
        patient=patient,
        population=population,
    )
    return sim.line_for(needed), sim


def sim_line_for_protocol(
    protocol: Protocol,
    params: Params,
    *,
    clock: Clock,
    seed: int | None = None,
    name: str = "sim",
    patient: PatientChoice = "drawn",
) -> SimLine:
    """The simulated line a protocol runs on, with its labelled starting materials.

    Its patient (``"drawn"``, ``"typical"`` or a profile) comes from the population of
    the protocol's starting material (:func:`protocol_population`). The run request
    is validated against it (parameters, equipment, estimates), so nothing needs to
    be opened or written before a request is known to be good.
    """
    batch = batch_identities(protocol, params)
    sim = SimLine(
        clock=clock,
        seed=seed,
        name=name,
        patient=patient,
        population=protocol_population(protocol),
    )
    for container in starting_materials(protocol.inputs, params, batch, patient=sim.patient):
        sim.world.add_container(container)
    sim.world.identities.update(batch)
    validate_request(protocol, sim.line_for(protocol.equipment()), params)
    return sim


def protocol_population(protocol: Protocol) -> Population | None:
    """The population of the first of the protocol's inputs that has one (None: none)."""
    for material in protocol.inputs:
        found = population_for_material(material.material)
        if found is not None:
            return found
    return None
