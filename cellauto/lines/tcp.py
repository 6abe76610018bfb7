"""Line devices over plain TCP (adapter ``tcp``): serve a simulated one, connect one.

For :mod:`cellauto.lines.wire`. The TCP line devices are the barcode scanner in TCP
server mode (docs/barcode-scanner.md) and the label printer taking ZPL II on its raw
port (docs/label-printer.md); the endpoint is ``tcp://HOST:PORT``,
served on ``tcp://127.0.0.1:PORT`` for a simulated line (port 0: a free port).
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

from cellauto.errors import BadInputError, EquipmentError
from cellauto.instruments.barcode_scanner import BarcodeScanner
from cellauto.instruments.base import Instrument
from cellauto.instruments.label_printer import LabelPrinter
from cellauto.lines.config import EquipmentConfig

if TYPE_CHECKING:
    from cellauto.sim.printer_tcp import PrinterTcpServer
    from cellauto.sim.scanner_tcp import ScannerTcpServer

__all__ = ["connect_tcp", "serve_tcp", "served_tcp_port"]


def served_tcp_port(config: EquipmentConfig, name: str) -> int:
    """The loopback port a simulated TCP device is served on (0: a free one)."""
    from cellauto.instruments.tcp import parse_tcp_endpoint

    try:
        host, port = parse_tcp_endpoint(config.endpoint or "")
    except BadInputError:
        host, port = "", -1
    if host != "127.0.0.1":
        raise BadInputError(
            f"equipment {name!r}: a simulated tcp instrument is served on loopback; endpoint "
            f"{config.endpoint!r} must be tcp://127.0.0.1:PORT (PORT 0 picks a free port)"
        )
    return port


async def serve_tcp(
    name: str, instrument: Instrument, port: int, stack: AsyncExitStack
) -> ScannerTcpServer | PrinterTcpServer:
    """Serve the simulated ``instrument`` over TCP on loopback (``server.endpoint``)."""
    from cellauto.sim.printer import SimZplPrinter
    from cellauto.sim.printer_tcp import serve_printer_tcp
    from cellauto.sim.scanner import SimBarcodeScanner
    from cellauto.sim.scanner_tcp import serve_scanner_tcp

    if isinstance(instrument, SimZplPrinter):
        return await stack.enter_async_context(serve_printer_tcp(instrument, port=port))
    if not isinstance(instrument, SimBarcodeScanner):
        raise EquipmentError(
            f"equipment {name!r}: no TCP server for a {instrument.interface_name}; the tcp "
            "adapter serves the BarcodeScanner and the LabelPrinter (the others: visa, "
            "opcua or sim)"
        )
    return await stack.enter_async_context(serve_scanner_tcp(instrument, port=port))


async def connect_tcp(
    name: str,
    interface: type[Instrument],
    config: EquipmentConfig,
    endpoint: str | None,
    stack: AsyncExitStack,
) -> Instrument:
    """Connect the TCP adapter for ``interface`` at ``endpoint``; closed with ``stack``."""
    from cellauto.instruments.tcp import TcpBarcodeScanner, TcpLabelPrinter

    if not endpoint:
        raise BadInputError(f"equipment {name!r}: a tcp://HOST:PORT endpoint is required")
    if issubclass(interface, LabelPrinter):
        printer = await TcpLabelPrinter.connect(endpoint, timeout_s=config.timeout_s)
        stack.push_async_callback(printer.aclose)
        return printer
    if not issubclass(interface, BarcodeScanner):
        raise EquipmentError(
            f"equipment {name!r}: no tcp adapter for {interface.__name__}; "
            "tcp adapters: BarcodeScanner, LabelPrinter"
        )
    scanner = await TcpBarcodeScanner.connect(endpoint, timeout_s=config.timeout_s)
    stack.push_async_callback(scanner.aclose)
    return scanner
