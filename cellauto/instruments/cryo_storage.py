"""CryoStorage: a vapour-phase liquid-nitrogen freezer holding frozen product.

Product is kept below -150 °C (PROCESS.md); the freezer reports its vapour-phase
temperature, LN2 level and alarms, and knows what it holds where (rack, box, slot).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import AsyncIterator

from pydantic import BaseModel, ConfigDict, Field

from cellauto.instruments.base import Instrument, command, query, stream
from cellauto.records.material_payloads import StoragePosition

__all__ = [
    "CryoStorage",
    "StorageConditions",
    "StoragePosition",
    "StoredItem",
]


class StorageConditions(BaseModel):
    """Vapour-phase temperature, LN2 level and alarm state at one instant."""

    model_config = ConfigDict(frozen=True)

    temperature_c: float
    ln2_level_pct: float = Field(ge=0, le=100)
    autofill_on: bool
    alarm: str | None = Field(description="why the freezer alarms; None when it does not")
    process_time_s: float


class StoredItem(BaseModel):
    """A container in the freezer and where it is."""

    model_config = ConfigDict(frozen=True)

    container_id: str
    position: StoragePosition
    stored_at_process_time_s: float


class CryoStorage(Instrument):
    interface_name = "CryoStorage"

    #: Product must be stored below this temperature (vapour phase, PROCESS.md).
    MAX_STORAGE_TEMPERATURE_C = -150.0

    @query
    @abstractmethod
    async def conditions(self) -> StorageConditions:
        """Current temperature, LN2 level, autofill and alarm."""

    @command
    @abstractmethod
    async def store(self, container_id: str, position: StoragePosition) -> StoredItem:
        """Put a container at a free position (refused when the freezer is too warm)."""

    @command
    @abstractmethod
    async def retrieve(self, container_id: str) -> StoredItem:
        """Take a stored container out; returns where it was."""

    @query
    @abstractmethod
    async def inventory(self) -> list[StoredItem]:
        """Everything stored, in storage order."""

    @stream
    @abstractmethod
    def conditions_stream(self, interval_s: float) -> AsyncIterator[StorageConditions]:
        """Conditions every ``interval_s`` seconds of process time, without end."""
