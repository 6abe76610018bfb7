"""Simulated instruments, the process models behind them, and fault injection."""

from cellauto.sim.bioreactor import SimBioreactor, TransductionModel
from cellauto.sim.counter import SimCellCounter
from cellauto.sim.culture import Culture, CultureModel
from cellauto.sim.cytometer import SimFlowCytometer
from cellauto.sim.dry_shipper import ShipperModel, SimDryShipper
from cellauto.sim.faults import (
    CommandFailure,
    Contamination,
    Disconnect,
    Fault,
    LN2LevelDrop,
    PowerLoss,
    SensorDrift,
    ShipperLidOpen,
    ShipperWarming,
    TemperatureExcursion,
)
from cellauto.sim.freezer import FreezeQuality, FreezerModel, SimControlledRateFreezer
from cellauto.sim.line import SimLine, build_sim_line, sim_line_for_protocol
from cellauto.sim.material import Container
from cellauto.sim.processor import SimCellProcessor
from cellauto.sim.scanner import SimBarcodeScanner
from cellauto.sim.simulate import SimulatedRun, simulate, simulate_async
from cellauto.sim.starting_material import MATERIAL_PRESETS, starting_materials
from cellauto.sim.storage import SimCryoStorage, StorageModel
from cellauto.sim.world import SimWorld

__all__ = [
    "MATERIAL_PRESETS",
    "CommandFailure",
    "Container",
    "Contamination",
    "Culture",
    "CultureModel",
    "Disconnect",
    "Fault",
    "FreezeQuality",
    "FreezerModel",
    "LN2LevelDrop",
    "PowerLoss",
    "SensorDrift",
    "ShipperLidOpen",
    "ShipperModel",
    "ShipperWarming",
    "SimBarcodeScanner",
    "SimBioreactor",
    "SimCellCounter",
    "SimCellProcessor",
    "SimControlledRateFreezer",
    "SimCryoStorage",
    "SimDryShipper",
    "SimFlowCytometer",
    "SimLine",
    "SimWorld",
    "SimulatedRun",
    "StorageModel",
    "TemperatureExcursion",
    "TransductionModel",
    "build_sim_line",
    "sim_line_for_protocol",
    "simulate",
    "simulate_async",
    "starting_materials",
]


def __getattr__(name: str) -> object:
    """``SimLiquidHandler`` is imported on first use (PyLabRobot takes ~0.3 s to import)."""
    if name == "SimLiquidHandler":
        from cellauto.sim.liquid_handler import SimLiquidHandler

        return SimLiquidHandler
    raise AttributeError(f"module 'cellauto.sim' has no attribute {name!r}")
