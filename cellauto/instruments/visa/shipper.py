"""VisaDryShipper: a dry shipper and its logger over VISA (docs/shipment.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Self

import anyio

from cellauto.errors import InstrumentError
from cellauto.instruments.base import InstrumentIdentity, require_range
from cellauto.instruments.dry_shipper import (
    DryShipper,
    LoggerReading,
    ShipperIdentity,
    ShipperStatus,
)
from cellauto.instruments.visa._adapter import VisaAdapter, reply_model
from cellauto.instruments.visa.errors import ScpiInstrumentError, ScpiReplyError
from cellauto.instruments.visa.overdue import Overdue
from cellauto.instruments.visa.scpi_format import format_real, quote
from cellauto.instruments.visa.scpi_reply import (
    parse_bool,
    parse_counted,
    parse_int,
    parse_real,
    parse_record,
    parse_string,
    split_fields,
)
from cellauto.instruments.visa.session import VisaSession

__all__ = ["HANDLING_BIT", "READINGS_PER_QUERY", "VisaDryShipper", "parse_readings"]

#: STATus:OPERation:CONDition? bit 4 (value 16): the lid is open for a load or unload.
HANDLING_BIT = 1 << 4
#: Readings asked for per ``LOGger:DATA?`` (a reply is at most 64 kB).
READINGS_PER_QUERY = 500


def parse_status(text: str) -> ShipperStatus:
    """``SHIPper:STATus?``: ``<lid>,<charge_pct>,<hold_h>,<temperature_c>,<time_s>,"<alarm>"``."""
    lid, charge, hold, temperature, at_s, alarm = parse_record(
        text, (parse_bool, parse_real, parse_real, parse_real, parse_real, parse_string)
    )
    fields = {
        "lid_open": lid,
        "ln2_charge_pct": charge,
        "hold_time_remaining_h": hold,
        "temperature_c": temperature,
        "process_time_s": at_s,
        "alarm": alarm or None,
    }
    return reply_model(ShipperStatus, text, fields)


def parse_readings(text: str) -> list[LoggerReading]:
    """``LOGger:DATA?``: ``<n>{,<time_s>,<temperature_c>}``."""
    fields = split_fields(text)
    count = parse_int(fields[0])
    if count < 0 or len(fields) != 1 + 2 * count:
        raise ScpiReplyError(f"{count} readings announced, {len(fields) - 1} fields follow", text)
    values = [parse_real(field) for field in fields[1:]]
    return [
        reply_model(
            LoggerReading,
            text,
            {"time": datetime.fromtimestamp(at_s, tz=UTC), "temperature_c": temperature},
        )
        for at_s, temperature in zip(values[::2], values[1::2], strict=True)
    ]


def _contents(text: str) -> list[str]:
    _, held = parse_counted(text, (), parse_string)
    return held


class VisaDryShipper(VisaAdapter, DryShipper):
    """A dry shipper over SCPI. Create with ``await VisaDryShipper.connect(resource)``:
    ``*IDN?`` and ``LOGger:SERial?`` make its :class:`ShipperIdentity`. A load or an
    unload is overlapped on the instrument; the adapter polls ``STAT:OPER:COND?`` every
    ``poll_interval_s`` of process time and gives up after ``max_handling_s``.
    """

    def __init__(
        self,
        session: VisaSession,
        identity: InstrumentIdentity,
        *,
        poll_interval_s: float = 5.0,
        max_handling_s: float = 900.0,
    ) -> None:
        super().__init__(session, identity)
        require_range(self, "poll_interval_s", poll_interval_s, low=0.01, unit="s")
        require_range(self, "max_handling_s", max_handling_s, low=poll_interval_s, unit="s")
        self.poll_interval_s = poll_interval_s
        self.max_handling_s = max_handling_s

    @classmethod
    async def connect(cls, resource_name: str, **options: Any) -> Self:
        shipper = await super().connect(resource_name, **options)
        try:
            serial = await shipper.session.query("LOG:SER?", parse_string)
            shipper.identity = ShipperIdentity(
                **shipper.identity.model_dump(), logger_serial=serial
            )
        except BaseException:
            await shipper.aclose()
            raise
        return shipper

    async def status(self) -> ShipperStatus:
        return await self.session.query("SHIP:STAT?", parse_status)

    async def logger_readings(self, since: datetime) -> list[LoggerReading]:
        if since.tzinfo is None:
            raise InstrumentError(
                f"{self.session.where}: logger_readings needs a timezone-aware time, not {since!r}"
            )
        readings: list[LoggerReading] = []
        after_s = since.timestamp()
        while True:
            page = await self.session.query(
                f"LOG:DATA? {format_real(after_s)},{READINGS_PER_QUERY}", parse_readings
            )
            readings += page
            if len(page) < READINGS_PER_QUERY:
                return readings
            after_s = page[-1].time.timestamp()

    async def load(self, container_id: str) -> list[str]:
        await self._handle(f"SHIP:LOAD {quote(container_id, field='container_id')}", container_id)
        return await self.contents()

    async def unload(self, container_id: str) -> list[str]:
        await self._handle(f"SHIP:UNL {quote(container_id, field='container_id')}", container_id)
        return await self.contents()

    async def contents(self) -> list[str]:
        return await self.session.query("SHIP:CONT?", _contents)

    async def charge(self) -> ShipperStatus:
        await self._handle("SHIP:CHAR", "the LN2 charge", max_s=max(self.max_handling_s, 3600.0))
        return await self.status()

    async def _handle(self, command: str, container_id: str, *, max_s: float | None = None) -> None:
        """Send a load, an unload or a charge, wait while the lid is open, raise what went
        wrong (``max_s``: how long the lid may stay open, default ``max_handling_s``)."""
        await self.session.command(command)
        limit_s = self.max_handling_s if max_s is None else max_s
        overdue = Overdue(limit_s, self.poll_interval_s)
        while await self.session.query("STAT:OPER:COND?", parse_int) & HANDLING_BIT:
            if overdue.seen_busy():
                raise InstrumentError(
                    f"{self.session.where}: the lid has been open for {container_id!r} for "
                    f"more than {limit_s:g} s; check the shipper"
                )
            await anyio.sleep(self.poll_interval_s)
        errors = await self.session.read_errors()
        if errors:
            raise ScpiInstrumentError(self.session.where, command, errors)
