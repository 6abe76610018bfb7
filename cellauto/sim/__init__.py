"""Simulated instruments, the process models behind them, and fault injection."""

from cellauto.sim.bioreactor import SimBioreactor, TransductionModel
from cellauto.sim.counter import SimCellCounter
from cellauto.sim.culture import Culture, CultureModel
from cellauto.sim.cytometer import SimFlowCytometer
from cellauto.sim.faults import (
    CommandFailure,
    Contamination,
    Disconnect,
    Fault,
    LN2LevelDrop,
    PowerLoss,
    SensorDrift,
    TemperatureExcursion,
)
from cellauto.sim.line import SimLine, build_sim_line, starting_materials
from cellauto.sim.material import Container
from cellauto.sim.processor import SimCellProcessor
from cellauto.sim.scanner import SimBarcodeScanner
from cellauto.sim.world import SimWorld

__all__ = [
    "CommandFailure",
    "Container",
    "Contamination",
    "Culture",
    "CultureModel",
    "Disconnect",
    "Fault",
    "LN2LevelDrop",
    "PowerLoss",
    "SensorDrift",
    "SimBarcodeScanner",
    "SimBioreactor",
    "SimCellCounter",
    "SimCellProcessor",
    "SimFlowCytometer",
    "SimLine",
    "SimWorld",
    "TemperatureExcursion",
    "TransductionModel",
    "build_sim_line",
    "starting_materials",
]
