"""Build a simulated line for whatever equipment a protocol asks for."""

from __future__ import annotations

from collections.abc import Mapping

from cellauto.clock import Clock
from cellauto.errors import EquipmentError
from cellauto.instruments.barcode_scanner import BarcodeScanner
from cellauto.instruments.base import Instrument
from cellauto.instruments.bioreactor import Bioreactor
from cellauto.instruments.cell_counter import CellCounter
from cellauto.instruments.line import Line
from cellauto.protocols.definition import MaterialInput
from cellauto.protocols.params import Params
from cellauto.sim.instruments import SimBarcodeScanner, SimBioreactor, SimCellCounter
from cellauto.sim.world import Container, SimWorld

__all__ = ["SIMULATED_INTERFACES", "build_sim_line", "starting_materials"]

SIMULATED_INTERFACES = (BarcodeScanner, CellCounter, Bioreactor)


def build_sim_line(
    needed: Mapping[str, type[Instrument]],
    *,
    clock: Clock,
    seed: int | None = None,
    materials: list[Container] | None = None,
    name: str = "sim",
) -> tuple[Line, SimWorld]:
    """A simulated instrument for each needed name, sharing one world and seed.

    ``materials`` are the containers on the line at the start (e.g. the labelled
    starting-material bag). Counters are created first so bioreactors hand samples
    to them.
    """
    world = SimWorld(clock, seed=seed)
    for container in materials or []:
        world.add_container(container)
    equipment: dict[str, Instrument] = {}
    counter: SimCellCounter | None = None
    order = sorted(needed.items(), key=lambda item: not issubclass(item[1], CellCounter))
    for index, (key, interface) in enumerate(order, start=1):
        if issubclass(interface, CellCounter):
            counter = SimCellCounter(world, serial=f"CC-{index:04d}")
            equipment[key] = counter
        elif issubclass(interface, Bioreactor):
            equipment[key] = SimBioreactor(world, counter, serial=f"BR-{index:04d}")
        elif issubclass(interface, BarcodeScanner):
            equipment[key] = SimBarcodeScanner(world, serial=f"SCN-{index:04d}")
        else:
            supported = ", ".join(i.__name__ for i in SIMULATED_INTERFACES)
            raise EquipmentError(
                f"no simulated instrument for {key!r} ({interface.__name__}); "
                f"simulated interfaces: {supported}"
            )
    return Line(name, equipment, simulated=True), world


def starting_materials(
    inputs: list[MaterialInput],
    params: Params,
    *,
    viable_cells: float = 1.0e9,
    viability_pct: float = 95.0,
    volume_ml: float = 100.0,
) -> list[Container]:
    """A labelled container for each declared input, as it would arrive at the line."""
    dead = viable_cells * (100.0 - viability_pct) / viability_pct
    return [
        Container(
            container_id=material.name,
            viable_cells=viable_cells,
            dead_cells=dead,
            volume_ml=volume_ml,
            label=str(getattr(params, material.identity_param)),
        )
        for material in inputs
    ]
