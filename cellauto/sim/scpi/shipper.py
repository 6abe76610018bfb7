"""SCPI for a :class:`SimDryShipper` (docs/shipment.md, "Over the wire").

``SHIPper:LOAD "<id>"``, ``SHIPper:UNLoad "<id>"`` and ``SHIPper:CHARge`` (a refill with
LN2) are overlapped: the lid is open while a container goes in or out or LN2 is poured
(STATus:OPERation bit 4, HANDLING), and status and
logger queries are answered meanwhile. ``LOGger:DATA? <since_s>,<max>`` returns at
most ``max`` readings taken after process time ``since_s``, oldest first, so that a
long trip is downloaded page by page.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import anyio

from cellauto.errors import InstrumentError
from cellauto.instruments.visa.scpi_format import format_bool, format_real, quote
from cellauto.sim.dry_shipper import SimDryShipper
from cellauto.sim.scpi.device import ScpiDevice
from cellauto.sim.scpi.errors import ScpiError
from cellauto.sim.scpi.program import Args, HeaderTable

__all__ = ["HANDLING", "MAX_READINGS_PER_QUERY", "ShipperScpi"]

log = logging.getLogger(__name__)

#: STATus:OPERation bit 4: the lid is open for a load or an unload.
HANDLING = 1 << 4
#: The most readings one ``LOGger:DATA?`` reply holds (a reply is at most 64 kB).
MAX_READINGS_PER_QUERY = 1000


class ShipperScpi(ScpiDevice):
    """Serves a simulated dry shipper and its logger."""

    def __init__(self, shipper: SimDryShipper) -> None:
        self.shipper = shipper
        self._running: anyio.CancelScope | None = None
        self._finished = anyio.Event()
        self._finished.set()
        super().__init__(shipper.identity)

    def register(self, table: HeaderTable) -> None:
        table.add("LOGger:SERial?", self._serial)
        table.add("LOGger:DATA?", self._data)
        table.add("SHIPper:STATus?", self._status)
        table.add("SHIPper:CONTents?", self._contents)
        table.add("SHIPper:LOAD", self._load)
        table.add("SHIPper:UNLoad", self._unload)
        table.add("SHIPper:CHARge", self._charge)

    async def operation_condition(self) -> int:
        return HANDLING if self._running is not None else 0

    async def operations_pending(self) -> bool:
        return self._running is not None

    async def wait_operations(self) -> None:
        await self._finished.wait()

    async def _serial(self, args: Args) -> str:
        args.expect(0)
        return quote(self.shipper.logger_serial)

    async def _status(self, args: Args) -> str:
        """``<lid>,<charge_pct>,<hold_remaining_h>,<temperature_c>,<process_time_s>,"<alarm>"``."""
        args.expect(0)
        status = await self.shipper.status()
        return ",".join(
            [
                format_bool(status.lid_open),
                format_real(status.ln2_charge_pct),
                format_real(status.hold_time_remaining_h),
                format_real(status.temperature_c),
                format_real(status.process_time_s),
                quote(status.alarm or ""),
            ]
        )

    async def _data(self, args: Args) -> str:
        """``<n>{,<time_s>,<temperature_c>}``: n readings, two fields each."""
        args.expect(2)
        since_s = args.real(0, "since_s")
        most = args.integer(1, "max")
        if not 1 <= most <= MAX_READINGS_PER_QUERY:
            raise ScpiError(-222, f"LOG:DATA?: max {most} outside 1..{MAX_READINGS_PER_QUERY}")
        since = datetime.fromtimestamp(since_s, tz=UTC)
        readings = await self.shipper.logger_readings(since, most=most)
        fields = [str(len(readings))]
        for reading in readings:
            fields += [format_real(reading.time.timestamp()), format_real(reading.temperature_c)]
        return ",".join(fields)

    async def _contents(self, args: Args) -> str:
        """``<n>{,"<container id>"}``."""
        args.expect(0)
        held = await self.shipper.contents()
        return ",".join([str(len(held)), *(quote(c) for c in held)])

    async def _load(self, args: Args) -> None:
        args.expect(1)
        container_id = args.string(0, "container id")
        if container_id in await self.shipper.contents():
            raise ScpiError(-221, f"SHIP:LOAD: {container_id!r} is already in the shipper")
        self._start(f"load of {container_id!r}", lambda: self.shipper.load(container_id))

    async def _unload(self, args: Args) -> None:
        args.expect(1)
        container_id = args.string(0, "container id")
        held = await self.shipper.contents()
        if container_id not in held:
            raise ScpiError(
                121,
                f"SHIP:UNL: {container_id!r} is not in the shipper; it holds: "
                f"{', '.join(held) or 'nothing'}",
            )
        self._start(f"unload of {container_id!r}", lambda: self.shipper.unload(container_id))

    async def _charge(self, args: Args) -> None:
        args.expect(0)
        self._start("charge", self.shipper.charge)

    def _start(self, what: str, act: Callable[[], Awaitable[object]]) -> None:
        if self._running is not None:
            raise ScpiError(101, "the lid is open for another container; wait for it")
        self._running, self._finished = anyio.CancelScope(), anyio.Event()
        self.operation_started(HANDLING)
        self.task_group.start_soon(self._handle, what, act, self._running)

    async def _handle(
        self, what: str, act: Callable[[], Awaitable[object]], scope: anyio.CancelScope
    ) -> None:
        try:
            with scope:
                await act()
        except InstrumentError as exc:
            self.push_error(100, str(exc))
        except Exception as exc:  # a simulator bug must not take the server down
            log.exception("%s: %s failed", self.shipper.where, what)
            self.push_error(100, f"internal error: {exc!r}")
        finally:
            if self._running is scope:
                self._running = None
                self._finished.set()
