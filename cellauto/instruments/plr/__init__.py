"""The PyLabRobot adapter (PyLabRobot 0.2.2, pinned exactly).

:class:`PlrLiquidHandler` implements :class:`~cellauto.instruments.LiquidHandler` on a
``pylabrobot.liquid_handling.LiquidHandler``; by default on PyLabRobot's chatterbox
simulation backend (:class:`LoggingChatterboxBackend`, which logs instead of printing).
Over a wire: :class:`TcpPlrLiquidHandler` on a :class:`TcpSerializingBackend` (JSON
lines over TCP). Creating one switches PyLabRobot's volume and tip tracking on for the whole process
and forwards PyLabRobot's log records to the ``cellauto.plr`` logger.
"""

from cellauto.instruments.plr._backend import LoggingChatterboxBackend
from cellauto.instruments.plr._deck import ContainerSpec, DeckLayout
from cellauto.instruments.plr._globals import (
    PLR_LOGGER,
    enable_tracking,
    require_tracking,
    route_pylabrobot_logging,
)
from cellauto.instruments.plr._tcp import TcpPlrLiquidHandler, TcpSerializingBackend
from cellauto.instruments.plr._transaction import TrackerSnapshot
from cellauto.instruments.plr._volumes import require_volume, split_volume
from cellauto.instruments.plr.liquid_handler import PlrLiquidHandler, plr_identity

__all__ = [
    "PLR_LOGGER",
    "ContainerSpec",
    "DeckLayout",
    "LoggingChatterboxBackend",
    "PlrLiquidHandler",
    "TcpPlrLiquidHandler",
    "TcpSerializingBackend",
    "TrackerSnapshot",
    "enable_tracking",
    "plr_identity",
    "require_tracking",
    "require_volume",
    "route_pylabrobot_logging",
    "split_volume",
]
