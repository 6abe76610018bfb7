"""Simulated barcode scanner: reads the label of a container on the line."""

from __future__ import annotations

import anyio

from cellauto.errors import InstrumentError
from cellauto.instruments.barcode_scanner import BarcodeScanner, Scan
from cellauto.sim.base import SimInstrument, sim_identity
from cellauto.sim.world import SimWorld

__all__ = ["SimBarcodeScanner"]


class SimBarcodeScanner(SimInstrument, BarcodeScanner):
    """Reads the printed label of a container (by its id on the line)."""

    def __init__(self, world: SimWorld, serial: str = "SCN-0001") -> None:
        super().__init__(world, sim_identity("SimScan 2D", serial))

    async def scan(self, label: str) -> Scan:
        self.guard("scan", command=False)
        await anyio.sleep(2.0)
        container = self.world.containers.get(label)
        if container is None:
            known = ", ".join(self.world.containers) or "none"
            raise InstrumentError(
                f"{self.where}: no label {label!r} in view; containers on the line: {known}"
            )
        return Scan(data=container.label, label=label)
