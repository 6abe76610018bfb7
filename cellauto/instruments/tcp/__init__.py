"""Adapters for line devices reached over plain TCP (docs/barcode-scanner.md).

:class:`TcpBarcodeScanner` drives a fixed-mount barcode scanner in TCP server mode
(Keyence / Cognex / Datalogic style): a trigger command, one line of decoded data back.
:class:`TcpLabelPrinter` prints ZPL II on a Zebra-class printer's raw port 9100
(docs/label-printer.md).
"""

from cellauto.instruments.tcp.connection import (
    TcpConnection,
    TcpConnectionError,
    TcpTimeoutError,
    parse_tcp_endpoint,
)
from cellauto.instruments.tcp.label_printer import TcpLabelPrinter
from cellauto.instruments.tcp.scanner import TcpBarcodeScanner

__all__ = [
    "TcpBarcodeScanner",
    "TcpConnection",
    "TcpConnectionError",
    "TcpLabelPrinter",
    "TcpTimeoutError",
    "parse_tcp_endpoint",
]
