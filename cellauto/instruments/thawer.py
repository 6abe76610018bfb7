"""Thawer: thaws one frozen container (a bag or a retained cryovial) to use or test it.

Modelled on a dry (water-free) thawing device: the container goes in frozen and
comes out thawed, and the device reports how long it took and the final
temperature. A container is thawed once; a second thaw of it is refused.
"""

from __future__ import annotations

from abc import abstractmethod

from pydantic import BaseModel, ConfigDict, Field

from cellauto.instruments.base import Instrument, command

__all__ = ["ThawResult", "Thawer"]


class ThawResult(BaseModel):
    """One thaw, as the thawer reports it."""

    model_config = ConfigDict(frozen=True)

    container_id: str
    duration_s: float = Field(ge=0, description="from start to the end of the thaw")
    final_temperature_c: float
    process_time_s: float = Field(description="when the thaw ended, process time")


class Thawer(Instrument):
    interface_name = "Thawer"

    @command
    @abstractmethod
    async def thaw(self, container_id: str) -> ThawResult:
        """Thaw the frozen container ``container_id`` (a few minutes); refuses a
        container that is not frozen or was thawed before."""
