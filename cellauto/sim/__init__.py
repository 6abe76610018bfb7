"""Simulated instruments and the process models behind them."""

from cellauto.sim.culture import Culture, CultureModel
from cellauto.sim.instruments import SimBarcodeScanner, SimBioreactor, SimCellCounter
from cellauto.sim.line import build_sim_line, starting_materials
from cellauto.sim.world import Container, SimWorld

__all__ = [
    "Container",
    "Culture",
    "CultureModel",
    "SimBarcodeScanner",
    "SimBioreactor",
    "SimCellCounter",
    "SimWorld",
    "build_sim_line",
    "starting_materials",
]
