"""Instrument interfaces (one per instrument class) and the line that holds them."""

from cellauto.instruments.barcode_scanner import BarcodeScanner, Scan
from cellauto.instruments.base import (
    Instrument,
    InstrumentIdentity,
    command,
    query,
    require_range,
    stream,
)
from cellauto.instruments.bioreactor import Bioreactor, ProcessValues, Setpoints
from cellauto.instruments.cell_counter import CellCount, CellCounter
from cellauto.instruments.line import Line
from cellauto.instruments.materials import Sample

__all__ = [
    "BarcodeScanner",
    "Bioreactor",
    "CellCount",
    "CellCounter",
    "Instrument",
    "InstrumentIdentity",
    "Line",
    "ProcessValues",
    "Sample",
    "Scan",
    "Setpoints",
    "command",
    "query",
    "require_range",
    "stream",
]
