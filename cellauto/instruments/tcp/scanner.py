"""TcpBarcodeScanner: a fixed-mount barcode scanner in TCP server mode.

The command set is in docs/barcode-scanner.md: ``LON`` triggers one read and is
answered by the decoded data (or ``ERROR`` when nothing was read), ``LOFF`` stops a
read, ``IDN`` gives the identity; every line ends in CR. A simulated scanner (vendor
``cellauto-sim``) is first told what it is pointed at, ``PRESENT <label>``; a real
one reads whatever is in front of it.

A scan has no physical effect, so a scan cut off by a dropped connection is tried
once more on a new connection; a timeout is not retried (the device is there but
did not read in time: that is worth an operator's look).
"""

from __future__ import annotations

import logging

from cellauto.errors import InstrumentError
from cellauto.instruments.barcode_scanner import BarcodeScanner, Scan
from cellauto.instruments.base import InstrumentIdentity
from cellauto.instruments.tcp.connection import TcpConnection, TcpConnectionError

__all__ = ["SIMULATED_VENDOR", "TcpBarcodeScanner"]

log = logging.getLogger(__name__)

#: The vendor a simulated scanner reports; it is told what is in view (``PRESENT``).
SIMULATED_VENDOR = "cellauto-sim"
#: What a scanner answers to a trigger that read nothing.
NO_READ = "ERROR"


def _identity(reply: str, endpoint: str) -> InstrumentIdentity:
    fields = [f.strip() for f in reply.split(",")]
    if len(fields) != 4 or not all(fields):
        raise InstrumentError(
            f"BarcodeScanner at {endpoint}: IDN answered {reply!r}, not "
            "VENDOR,MODEL,SERIAL,FIRMWARE; is this a barcode scanner in TCP server mode?"
        )
    vendor, model, serial, firmware = fields
    return InstrumentIdentity(
        vendor=vendor, model=model, serial=serial, firmware=firmware, adapter="tcp"
    )


class TcpBarcodeScanner(BarcodeScanner):
    """Reads labels through a scanner's TCP server mode.

    Create with ``await TcpBarcodeScanner.connect("tcp://127.0.0.1:9004")``; close with
    :meth:`aclose`.
    """

    def __init__(self, connection: TcpConnection, identity: InstrumentIdentity) -> None:
        super().__init__(identity)
        self.connection = connection
        self.simulated = identity.vendor == SIMULATED_VENDOR

    @property
    def where(self) -> str:
        return f"BarcodeScanner {self.identity.serial} at {self.connection.endpoint}"

    @classmethod
    async def connect(cls, endpoint: str, *, timeout_s: float = 5.0) -> TcpBarcodeScanner:
        """Connect and ask the scanner who it is; errors name the endpoint."""
        connection = TcpConnection(
            endpoint, timeout_s=timeout_s, where=f"BarcodeScanner at {endpoint}"
        )
        try:
            reply = await connection.request("IDN")
            assert reply is not None
            identity = _identity(reply, endpoint)
        except BaseException:
            await connection.aclose()
            raise
        log.info(
            "%s %s %s: connected at %s", identity.vendor, identity.model, identity.serial, endpoint
        )
        return cls(connection, identity)

    async def scan(self, label: str) -> Scan:
        if not label or any(c in label for c in "\r\n"):
            raise InstrumentError(f"{self.where}: a label must be one line of text, not {label!r}")
        try:
            return await self._scan(label)
        except TcpConnectionError as exc:
            log.warning("%s: %s; reconnecting once", self.where, exc)
        try:
            return await self._scan(label)
        except TcpConnectionError as exc:
            raise TcpConnectionError(
                f"{exc}; a reconnect did not help: check the scanner and its network "
                "connection, then resume the run"
            ) from None

    async def _scan(self, label: str) -> Scan:
        if self.simulated:
            presented = await self.connection.request(f"PRESENT {label}")
            if presented != "OK":
                reason = (presented or "").removeprefix("NG").strip()
                raise InstrumentError(f"{self.where}: cannot present {label!r}: {reason}")
        data = await self.connection.request("LON")
        if data is None or data == NO_READ or not data:
            raise InstrumentError(
                f"{self.where}: no read of {label!r} (the scanner answered {data!r}); "
                "check that the label is in view, clean and undamaged, then scan again"
            )
        if data.startswith("NG"):
            raise InstrumentError(f"{self.where}: the scanner refused the trigger: {data!r}")
        return Scan(data=data, label=label)

    async def aclose(self) -> None:
        await self.connection.aclose()
