"""BarcodeScanner: reads what is printed on a label (chain of identity)."""

from __future__ import annotations

from abc import abstractmethod

from pydantic import BaseModel, ConfigDict

from cellauto.instruments.base import Instrument, query


class Scan(BaseModel):
    """The decoded content of one label."""

    model_config = ConfigDict(frozen=True)

    data: str
    symbology: str = "Code128"
    label: str = ""
    symbols: tuple[tuple[str, str], ...] = ()
    """Every barcode decoded on the label, ``(symbology, data)``, when the scanner reads
    them all (a 2D imager); empty when it reads one."""


class BarcodeScanner(Instrument):
    interface_name = "BarcodeScanner"

    @query
    @abstractmethod
    async def scan(self, label: str) -> Scan:
        """Scan the label described by ``label`` (e.g. "apheresis bag")."""
