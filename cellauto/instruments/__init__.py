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
    CultureVolume,
    HarvestResult,
    ProcessValues,
    Reagent,
    Setpoints,
    StaticCultureVessel,
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
from cellauto.instruments.controlled_rate_freezer import (
    ControlledRateFreezer,
    FreezeProfile,
    FreezeResult,
    FreezerReading,
    FreezerStatus,
    Hold,
    Ramp,
    standard_freeze_profile,
)
from cellauto.instruments.cryo_storage import (
    CryoStorage,
    StorageConditions,
    StoragePosition,
    StoredItem,
)
from cellauto.instruments.dry_shipper import DryShipper, ShipperIdentity, ShipperStatus
from cellauto.instruments.flow_cytometer import FlowCytometer, Immunophenotype
from cellauto.instruments.limits import LimitFlag
from cellauto.instruments.line import Line
from cellauto.instruments.liquid_handler import LiquidHandler, Transfer, TransferOutcomeUnknownError
from cellauto.instruments.materials import Sample
from cellauto.instruments.thawer import Thawer, ThawResult

__all__ = [
    "BarcodeScanner",
    "Bioreactor",
    "CellCount",
    "CellCounter",
    "CellProcessor",
    "ControlledRateFreezer",
    "CryoStorage",
    "CultureVolume",
    "DryShipper",
    "FlowCytometer",
    "FreezeProfile",
    "FreezeResult",
    "FreezerReading",
    "FreezerStatus",
    "HarvestResult",
    "Hold",
    "Immunophenotype",
    "Instrument",
    "InstrumentIdentity",
    "LimitFlag",
    "Line",
    "LiquidHandler",
    "ProcessValues",
    "ProgramInputs",
    "ProgramParameter",
    "ProgramResult",
    "ProgramStatus",
    "ProgramTemplate",
    "Ramp",
    "Reagent",
    "Sample",
    "Scan",
    "Setpoints",
    "ShipperIdentity",
    "ShipperStatus",
    "StaticCultureVessel",
    "StorageConditions",
    "StoragePosition",
    "StoredItem",
    "ThawResult",
    "Thawer",
    "Transfer",
    "TransferOutcomeUnknownError",
    "command",
    "composite",
    "query",
    "require_range",
    "standard_freeze_profile",
    "stream",
]
