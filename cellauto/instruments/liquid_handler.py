"""LiquidHandler: moves liquid between containers with disposable tips.

Sampling from bags and tubes into counting vials, QC aliquots and formulation
additions. Every command names its source and destination containers by their ids
on the line, so the recording boundary journals where each volume came from and
went to. A transfer larger than one tip holds is split into several
aspirate/dispense cycles with the same tip; each transfer uses a fresh tip.
"""

from __future__ import annotations

from abc import abstractmethod

from pydantic import BaseModel, ConfigDict, Field

from cellauto.errors import OutcomeUnknownError
from cellauto.instruments.base import Instrument, command, query

__all__ = ["LiquidHandler", "Transfer", "TransferOutcomeUnknownError"]


class TransferOutcomeUnknownError(OutcomeUnknownError):
    """A transfer or aliquot failed after the liquid handler acted (or may have): some
    liquid may have moved and a tip may be on the channel. Nothing is rolled back; the
    containers it touched are in doubt until an operator confirms them."""

    def __init__(self, message: str, *, in_doubt: list[str]) -> None:
        super().__init__(message)
        #: The container ids whose volume is now unknown.
        self.in_doubt = in_doubt


class Transfer(BaseModel):
    """One completed transfer from a source container into a destination container."""

    model_config = ConfigDict(frozen=True)

    source_container_id: str = Field(min_length=1)
    destination_container_id: str = Field(min_length=1)
    volume_ul: float = Field(gt=0)
    tips_used: list[str] = Field(description="tip positions used, e.g. 'tips_1:A1'")
    cycles: int = Field(ge=1, description="aspirate/dispense cycles (volume above tip capacity)")
    source_volume_after_ul: float = Field(ge=0)
    destination_volume_after_ul: float = Field(ge=0)


class LiquidHandler(Instrument):
    interface_name = "LiquidHandler"

    @command
    @abstractmethod
    async def transfer(
        self, source_container_id: str, destination_container_id: str, volume_ul: float
    ) -> Transfer:
        """Move ``volume_ul`` from source to destination with one fresh tip.

        Volumes above the tip's capacity take several aspirate/dispense cycles. A
        volume ≤ 0 (or not a number), more than the source holds, more than the
        destination has room for, or an unknown container is refused before
        anything moves, and leaves every container and tip as before. A failure after
        the hardware acted raises :class:`TransferOutcomeUnknownError`: nothing is
        rolled back, and the containers and the channel are in doubt until confirmed.
        """

    @command
    @abstractmethod
    async def aliquot(
        self, source_container_id: str, destination_container_ids: list[str], volume_ul_each: float
    ) -> list[Transfer]:
        """Dispense ``volume_ul_each`` from the source into each destination (a tip each).

        Refusals as for :meth:`transfer`, before anything moves. A failure after the
        hardware acted raises :class:`TransferOutcomeUnknownError` (the aliquots done
        stay done; the source, the destinations and the channel are in doubt).
        """

    @query
    @abstractmethod
    async def volume(self, container_id: str) -> float:
        """The liquid in ``container_id``, in µL."""

    @query
    @abstractmethod
    async def containers(self) -> dict[str, float]:
        """Every container on the deck: container id -> volume in µL."""

    @query
    @abstractmethod
    async def tips_remaining(self) -> int:
        """Fresh tips left in the tip racks."""
