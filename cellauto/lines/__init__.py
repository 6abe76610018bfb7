"""Lines: configuration of which adapter serves each equipment name."""

from cellauto.lines.config import (
    EquipmentConfig,
    LineConfig,
    MaterialConfig,
    SharedConfig,
    SimulationConfig,
    load_line_config,
)

__all__ = [
    "EquipmentConfig",
    "LineConfig",
    "MaterialConfig",
    "SharedConfig",
    "SimulationConfig",
    "load_line_config",
]
