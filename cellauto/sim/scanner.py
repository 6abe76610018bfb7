"""Simulated barcode scanner: reads the label of a container on the line."""

from __future__ import annotations

import anyio

from cellauto.errors import InstrumentError
from cellauto.instruments.barcode_scanner import BarcodeScanner, Scan
from cellauto.sim.base import SimInstrument, sim_identity
from cellauto.sim.faults import Fault, WrongBagInView
from cellauto.sim.world import SimWorld

__all__ = ["SimBarcodeScanner"]


class SimBarcodeScanner(SimInstrument, BarcodeScanner):
    """Reads the labels of a container (by its id on the line): every barcode decoded."""

    def __init__(self, world: SimWorld, serial: str = "SCN-0001") -> None:
        super().__init__(world, sim_identity("SimScan 2D", serial))

    def inject_process_fault(self, fault: Fault) -> None:
        if not isinstance(fault, WrongBagInView):
            super().inject_process_fault(fault)
            return
        start = self.world.elapsed_h() if fault.at_h is None else fault.at_h
        self.world.view[fault.container] = (fault.shows, start)

    async def scan(self, label: str) -> Scan:
        self.guard("scan", command=False)
        await anyio.sleep(2.0)
        world = self.world
        symbols = world.barcodes(label)
        container = world.containers.get(world.in_view(label))
        if container is None and not symbols:
            known = ", ".join(world.containers) or "none"
            raise InstrumentError(
                f"{self.where}: no label {label!r} in view; containers on the line: {known}"
            )
        data = container.label if container is not None and container.label else ""
        if not data and symbols:
            data = symbols[0][1]
        return Scan(data=data, label=label, symbols=symbols)
