"""A simulated Zebra-class label printer on raw TCP (docs/label-printer.md).

:func:`serve_printer_tcp` serves a :class:`SimZplPrinter` the way a plant's printer
listens on port 9100: ZPL formats (``^XA`` ... ``^XZ``) are queued and printed one by
one (each the simulated printer's 3 s of process time, rendered by zint into the
simulated world, so the line's scanner reads what was printed); ``~HI`` and ``~HS``
are answered at once in the standard Zebra formats (:mod:`cellauto.instruments.tcp.zebra`);
SGD ``! U1 getvar "device.unique_id"`` gives the serial. The simulation-only SGD
variable ``cellauto.sim.container`` names the container the next labels go on.

Faults: the printer's own (misprint, smudge, :mod:`cellauto.sim.faults`) act on each
label printed; head open, paper out and pause are the server's state
(:meth:`PrinterTcpServer.set_state`): while any is set, formats stay in the buffer
and ``~HS`` reports it, as a real printer does.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from anyio.abc import Listener, SocketAttribute, SocketStream

from cellauto.clock import serving_outside
from cellauto.errors import InstrumentError
from cellauto.instruments.tcp.label_printer import CONTAINER_VARIABLE
from cellauto.instruments.tcp.zebra import HostIdentification, HostStatus, format_hi, format_hs
from cellauto.sim.printer import SimZplPrinter

__all__ = ["MAX_FORMAT_BYTES", "PrinterTcpServer", "serve_printer_tcp"]

log = logging.getLogger(__name__)

#: A format (or a line of SGD) longer than this closes the connection.
MAX_FORMAT_BYTES = 256 * 1024
_SGD = re.compile(r'^!\s*U1\s+(getvar|setvar)\s+"([^"]*)"(?:\s+"([^"]*)")?\s*$', re.IGNORECASE)


class PrinterTcpServer:
    """Serves one simulated printer to any number of TCP connections."""

    def __init__(self, printer: SimZplPrinter, listener: Listener[SocketStream]) -> None:
        self.printer = printer
        self.listener = listener
        self.port: int = listener.extra(SocketAttribute.local_port)
        self.head_open = False
        self.paper_out = False
        self.paused = False
        #: Formats received and not yet printed: (zpl, container).
        self.queue: deque[tuple[str, str]] = deque()
        #: Labels that could not be printed (the printer's own fault), with why.
        self.failed: list[tuple[str, str]] = []
        self.label_length_dots = 0
        self._partial: set[int] = set()  # connections in the middle of a format
        self._wake = anyio.Event()

    @property
    def endpoint(self) -> str:
        """``tcp://127.0.0.1:PORT``, as a line file names it."""
        return f"tcp://127.0.0.1:{self.port}"

    def set_state(
        self,
        *,
        head_open: bool | None = None,
        paper_out: bool | None = None,
        paused: bool | None = None,
    ) -> None:
        """Open or close the head, run out of or load labels, pause or resume."""
        if head_open is not None:
            self.head_open = head_open
        if paper_out is not None:
            self.paper_out = paper_out
        if paused is not None:
            self.paused = paused
        self._wake.set()

    def status(self) -> HostStatus:
        return HostStatus(
            paper_out=self.paper_out,
            paused=self.paused,
            head_open=self.head_open,
            label_length_dots=self.label_length_dots,
            formats_in_buffer=len(self.queue),
            labels_remaining=len(self.queue),
            partial_format=bool(self._partial),
        )

    def identification(self) -> HostIdentification:
        identity = self.printer.identity
        return HostIdentification(
            model=identity.model, firmware=identity.firmware, dots_per_mm=8, memory_kb=8192
        )

    def _stopped(self) -> bool:
        return self.head_open or self.paper_out or self.paused

    async def run_printer(self) -> None:
        """Print the queued formats in order, while nothing stops the printer."""
        while True:
            while not self.queue or self._stopped():
                self._wake = anyio.Event()
                await self._wake.wait()
            zpl, container = self.queue[0]
            with serving_outside():  # a request from outside the loop
                try:
                    await self.printer.print_label(zpl, container)
                    self.label_length_dots = self.printer.world.labels.label_of(
                        container
                    ).printed.length
                except (InstrumentError, ValueError) as exc:
                    log.warning(
                        "%s: label for %r not printed: %s", self.printer.where, container, exc
                    )
                    self.failed.append((container, str(exc)))
            self.queue.popleft()

    def _queue_format(self, zpl: str, container: str) -> None:
        if not container:
            log.warning(
                "%s: a label with no container named is printed to the floor", self.printer.where
            )
        self.queue.append((zpl, container or "unapplied"))
        self._wake.set()

    async def serve_connection(self, stream: SocketStream) -> None:
        container = ""
        buffer = b""
        async with stream:
            try:
                while True:
                    try:
                        buffer += await stream.receive()
                    except (anyio.EndOfStream, anyio.BrokenResourceError):
                        return
                    while True:
                        buffer = buffer.lstrip(b" \r\n\t")
                        consumed, reply, container = self._take(buffer, container)
                        if consumed == 0:
                            break
                        buffer = buffer[consumed:]
                        if reply:
                            await stream.send(reply)
                    if buffer.upper().startswith(b"^XA"):
                        self._partial.add(id(stream))
                    else:
                        self._partial.discard(id(stream))
                    if len(buffer) > MAX_FORMAT_BYTES:
                        log.warning(
                            "%s: over %d bytes with no end; closing",
                            self.printer.where,
                            MAX_FORMAT_BYTES,
                        )
                        return
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                return
            finally:
                self._partial.discard(id(stream))

    def _take(self, buffer: bytes, container: str) -> tuple[int, bytes, str]:
        """(bytes consumed, reply, container) for the command at the start of ``buffer``
        (0 consumed: it is not all here yet)."""
        if not buffer:
            return 0, b"", container
        head = buffer[:3].upper()
        if buffer[:1] == b"^" and len(buffer) < 3:
            return 0, b"", container
        if head == b"^XA":
            end = buffer.upper().find(b"^XZ")
            if end < 0:
                return 0, b"", container
            self._queue_format(buffer[: end + 3].decode("utf-8", errors="replace"), container)
            return end + 3, b"", container
        if buffer[:1] == b"~":
            if len(buffer) < 3:
                return 0, b"", container
            if head == b"~HS":
                return 3, format_hs(self.status()), container
            if head == b"~HI":
                return 3, format_hi(self.identification()), container
            log.info("%s: ignored %r", self.printer.where, head)
            return 3, b"", container
        if buffer[:1] == b"!":
            end = buffer.find(b"\n")
            if end < 0:
                return 0, b"", container
            return end + 1, *self._sgd(buffer[:end].decode("utf-8", errors="replace"), container)
        # anything else (a stray command outside a format): skipped, as a printer does
        skip = next(
            (i for i in range(1, len(buffer)) if buffer[i : i + 1] in (b"^", b"~", b"!")),
            len(buffer),
        )
        log.info("%s: ignored %r", self.printer.where, buffer[:skip][:40])
        return skip, b"", container

    def _sgd(self, line: str, container: str) -> tuple[bytes, str]:
        match = _SGD.match(line.strip())
        if match is None:
            return b"", container
        verb, name, value = match.group(1).lower(), match.group(2), match.group(3)
        if verb == "getvar":
            known = {"device.unique_id": self.printer.identity.serial}
            return f'"{known.get(name, "?")}"'.encode(), container
        if name == CONTAINER_VARIABLE and value is not None:
            return b"", value
        return b"", container


@asynccontextmanager
async def serve_printer_tcp(
    printer: SimZplPrinter, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[PrinterTcpServer]:
    """Serve ``printer`` until the block ends (port 0: a free port); then close it all."""
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    server = PrinterTcpServer(printer, listener)
    log.info("%s: raw ZPL on %s", printer.where, server.endpoint)
    try:
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(server.run_printer)
            task_group.start_soon(listener.serve, server.serve_connection, task_group)
            try:
                yield server
            finally:
                task_group.cancel_scope.cancel()
    finally:
        await listener.aclose()
