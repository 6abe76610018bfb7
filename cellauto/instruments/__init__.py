"""Instrument interfaces (one per instrument class) and the line that holds them."""

from cellauto.instruments.barcode_scanner import BarcodeScanner, Scan
from cellauto.instruments.base import (
    Instrument,
    InstrumentIdentity,
    command,
    composite,
    query,
    require_range,
    stream,
)
from cellauto.instruments.bioreactor import (
    Bioreactor,
    HarvestResult,
    ProcessValues,
    Reagent,
    Setpoints,
)
from cellauto.instruments.cell_counter import CellCount, CellCounter
from cellauto.instruments.cell_processor import (
    CellProcessor,
    ProgramInputs,
    ProgramParameter,
    ProgramResult,
    ProgramStatus,
    ProgramTemplate,
)
from cellauto.instruments.flow_cytometer import FlowCytometer, Immunophenotype
from cellauto.instruments.line import Line
from cellauto.instruments.materials import Sample

__all__ = [
    "BarcodeScanner",
    "Bioreactor",
    "CellCount",
    "CellCounter",
    "CellProcessor",
    "FlowCytometer",
    "HarvestResult",
    "Immunophenotype",
    "Instrument",
    "InstrumentIdentity",
    "Line",
    "ProcessValues",
    "ProgramInputs",
    "ProgramParameter",
    "ProgramResult",
    "ProgramStatus",
    "ProgramTemplate",
    "Reagent",
    "Sample",
    "Scan",
    "Setpoints",
    "command",
    "composite",
    "query",
    "require_range",
    "stream",
]
