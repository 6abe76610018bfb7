"""PyLabRobot's chatterbox (simulation) backend, logging instead of printing.

``LiquidHandlerChatterboxBackend`` prints a table for every operation to stdout.
This subclass keeps everything else of it (channels, tip presence from the
trackers, the 96 head) and turns each operation into one log line on
``cellauto.plr.backend``; it never redirects ``sys.stdout`` (a process-wide stream).
"""

from __future__ import annotations

import logging
from typing import Any

from pylabrobot.liquid_handling.backends.backend import LiquidHandlerBackend
from pylabrobot.liquid_handling.backends.chatterbox import LiquidHandlerChatterboxBackend
from pylabrobot.liquid_handling.standard import (
    Drop,
    DropTipRack,
    MultiHeadAspirationContainer,
    MultiHeadAspirationPlate,
    MultiHeadDispenseContainer,
    MultiHeadDispensePlate,
    Pickup,
    PickupTipRack,
    ResourceDrop,
    ResourceMove,
    ResourcePickup,
    SingleChannelAspiration,
    SingleChannelDispense,
)

__all__ = ["LoggingChatterboxBackend"]

logger = logging.getLogger("cellauto.plr.backend")


def _ops(ops: list[Any], channels: list[int], *, volumes: bool) -> str:
    parts = []
    for op, channel in zip(ops, channels, strict=False):
        volume = f"{op.volume:g} uL " if volumes else ""
        parts.append(f"p{channel}: {volume}{op.resource.name}")
    return "; ".join(parts)


class LoggingChatterboxBackend(LiquidHandlerChatterboxBackend):  # type: ignore[misc]  # untyped base
    """The device-free simulation backend of PyLabRobot 0.2.2, quiet on stdout."""

    def __init__(self, num_channels: int = 1) -> None:
        super().__init__(num_channels=num_channels)

    async def setup(self) -> None:
        await LiquidHandlerBackend.setup(self)  # skip the chatterbox's print
        logger.debug("setting up the simulated liquid handler (%d channels)", self.num_channels)

    async def stop(self) -> None:
        logger.debug("stopping the simulated liquid handler")

    async def pick_up_tips(self, ops: list[Pickup], use_channels: list[int], **kw: Any) -> None:
        logger.debug("pick up tips: %s", _ops(ops, use_channels, volumes=False))

    async def drop_tips(self, ops: list[Drop], use_channels: list[int], **kw: Any) -> None:
        logger.debug("drop tips: %s", _ops(ops, use_channels, volumes=False))

    async def aspirate(
        self, ops: list[SingleChannelAspiration], use_channels: list[int], **kw: Any
    ) -> None:
        logger.debug("aspirate: %s", _ops(ops, use_channels, volumes=True))

    async def dispense(
        self, ops: list[SingleChannelDispense], use_channels: list[int], **kw: Any
    ) -> None:
        logger.debug("dispense: %s", _ops(ops, use_channels, volumes=True))

    async def pick_up_tips96(self, pickup: PickupTipRack, **kw: Any) -> None:
        logger.debug("pick up 96 tips from %s", pickup.resource.name)

    async def drop_tips96(self, drop: DropTipRack, **kw: Any) -> None:
        logger.debug("drop 96 tips to %s", drop.resource.name)

    async def aspirate96(
        self, aspiration: MultiHeadAspirationPlate | MultiHeadAspirationContainer
    ) -> None:
        logger.debug("aspirate96 %g uL", aspiration.volume)

    async def dispense96(
        self, dispense: MultiHeadDispensePlate | MultiHeadDispenseContainer
    ) -> None:
        logger.debug("dispense96 %g uL", dispense.volume)

    async def pick_up_resource(self, pickup: ResourcePickup) -> None:
        logger.debug("pick up resource %s", pickup.resource.name)

    async def move_picked_up_resource(self, move: ResourceMove) -> None:
        logger.debug("move picked-up resource to %s", move.location)

    async def drop_resource(self, drop: ResourceDrop) -> None:
        logger.debug("drop resource %s", drop.resource.name)
