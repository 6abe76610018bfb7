"""DryShipper: a liquid-nitrogen dry shipper with a temperature data logger.

A dry shipper carries frozen product below -150 °C (PROCESS.md) without free liquid:
its absorbent is charged with LN2, which holds the well at about -190 °C for the
shipper's hold time (days), after which it warms. Opening the lid to load or unload
warms the well for minutes. A data logger in the well records the temperature at a
fixed interval; its readings, downloaded at receipt, are the shipment's evidence.

The logger's serial is part of the shipper's identity (:class:`ShipperIdentity`): a
shipment record names the logger whose readings it holds.
"""

from __future__ import annotations

from abc import abstractmethod
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from cellauto.instruments.base import Instrument, InstrumentIdentity, command, query
from cellauto.records.material_payloads import LoggerReading

__all__ = ["DryShipper", "LoggerReading", "ShipperIdentity", "ShipperStatus"]


class ShipperIdentity(InstrumentIdentity):
    """A dry shipper's identity, with the serial of the data logger it carries.

    The logger's serial is kept beside the identity's fields, not among them: a run's
    equipment records carry the fields every instrument has, and the shipment records
    name the logger whose readings they hold.
    """

    _logger_serial: str = PrivateAttr()

    def __init__(self, *, logger_serial: str, **fields: Any) -> None:
        super().__init__(**fields)
        if not logger_serial.strip():
            raise ValueError(f"dry shipper {self.serial}: the logger serial is empty")
        self._logger_serial = logger_serial

    @property
    def logger_serial(self) -> str:
        """The serial of the data logger in the shipper's well."""
        return self._logger_serial


class ShipperStatus(BaseModel):
    """The shipper at one instant: lid, LN2 charge, hold time left and temperature."""

    model_config = ConfigDict(frozen=True)

    lid_open: bool
    ln2_charge_pct: float = Field(ge=0, le=100)
    hold_time_remaining_h: float = Field(
        ge=0, description="how long the charge keeps the well below the storage limit"
    )
    temperature_c: float
    alarm: str | None = Field(description="why the shipper alarms; None when it does not")
    process_time_s: float


class DryShipper(Instrument):
    interface_name = "DryShipper"

    #: Frozen product must stay below this temperature (vapour phase, PROCESS.md).
    MAX_TEMPERATURE_C = -150.0

    identity: ShipperIdentity

    def __init__(self, identity: ShipperIdentity) -> None:
        super().__init__(identity)

    @property
    def logger_serial(self) -> str:
        """The serial of the data logger in the shipper's well."""
        return self.identity.logger_serial

    @query
    @abstractmethod
    async def status(self) -> ShipperStatus:
        """Lid, LN2 charge, hold time remaining and well temperature now."""

    @query
    @abstractmethod
    async def logger_readings(self, since: datetime) -> list[LoggerReading]:
        """Every logger reading taken after ``since`` (process time), oldest first."""

    @command
    @abstractmethod
    async def load(self, container_id: str) -> list[str]:
        """Open the lid, put the container in the well, close the lid; returns the contents."""

    @command
    @abstractmethod
    async def unload(self, container_id: str) -> list[str]:
        """Open the lid, take the container out, close the lid; returns what is left."""

    @query
    @abstractmethod
    async def contents(self) -> list[str]:
        """The containers in the well, in loading order."""

    @command
    @abstractmethod
    async def charge(self) -> ShipperStatus:
        """Refill the shipper with LN2 (a full charge from now); its status afterwards."""
