"""A simulated barcode scanner in TCP server mode (docs/barcode-scanner.md).

Fixed-mount scanners (Keyence SR, Cognex DataMan, Datalogic Matrix) are line devices
that listen on a TCP port: a controller sends a trigger command, ``LON\\r``, and the
scanner answers one line, the decoded data or ``ERROR``, terminated by ``\\r``.
:func:`serve_scanner_tcp` serves a :class:`SimBarcodeScanner` that way on loopback.

A real scanner cannot know what it is pointed at; the simulated one is told with a
simulation-only command, ``PRESENT <container id>\\r``, which places the labelled
container of the simulated world in front of it (one item in view, shared by every
connection, as the physical field of view is).

The read itself is :meth:`SimBarcodeScanner.scan` (its 2 s of process time, its
faults), served inside :func:`cellauto.clock.serving_outside` so that a line served
in the runner's own process keeps virtual time as in-process.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from anyio.abc import Listener, SocketAttribute, SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from cellauto.clock import serving_outside
from cellauto.errors import InstrumentError
from cellauto.sim.scanner import SimBarcodeScanner

__all__ = ["COMMANDS", "MAX_COMMAND_BYTES", "ScannerTcpServer", "serve_scanner_tcp"]

log = logging.getLogger(__name__)

#: A longer command line is refused and the connection closed.
MAX_COMMAND_BYTES = 1024
#: The answer to a trigger that read nothing (as Keyence/Datalogic scanners send it).
NO_READ = "ERROR"
#: The command set, for the answer to an unknown command.
COMMANDS = "LON, LOFF, IDN, PRESENT <container id>, PRESENT"


class _Connection:
    """One client's commands, executed in order; ``LOFF`` acts at once (it stops a read)."""

    def __init__(self, server: ScannerTcpServer, stream: SocketStream) -> None:
        self.server = server
        self.stream = stream
        self.reading: anyio.CancelScope | None = None

    async def reply(self, text: str) -> None:
        await self.stream.send(text.encode("utf-8") + b"\r")

    async def execute(self, lines: MemoryObjectReceiveStream[str]) -> None:
        async with lines:
            async for line in lines:
                with serving_outside():  # a request from outside the loop
                    await self._execute(line)

    async def _execute(self, line: str) -> None:
        word, _, rest = line.strip().partition(" ")
        command = word.upper()
        if command == "LON":
            answer = NO_READ
            with anyio.CancelScope() as self.reading:
                answer = await self.server.read()
            self.reading = None
            await self.reply(answer)
        elif command == "IDN":
            identity = self.server.scanner.identity
            fields = (identity.vendor, identity.model, identity.serial, identity.firmware)
            await self.reply(",".join(fields))
        elif command == "PRESENT":
            await self.reply(self.server.present(rest.strip()))
        elif command and command != "LOFF":  # LOFF with no read in progress: nothing to stop
            await self.reply(f"NG unknown command {word!r}; commands: {COMMANDS}")

    def stop_reading(self) -> None:
        if self.reading is not None:
            self.reading.cancel()


class ScannerTcpServer:
    """Serves one simulated scanner to any number of TCP connections."""

    def __init__(self, scanner: SimBarcodeScanner, listener: Listener[SocketStream]) -> None:
        self.scanner = scanner
        self.listener = listener
        self.port: int = listener.extra(SocketAttribute.local_port)
        #: The container in front of the scanner (``PRESENT``), or None.
        self.in_view: str | None = None
        self.connections = 0

    @property
    def endpoint(self) -> str:
        """``tcp://127.0.0.1:PORT``, as a line file names it."""
        return f"tcp://127.0.0.1:{self.port}"

    def present(self, container_id: str) -> str:
        """``PRESENT``: put a container of the simulated world in view (or nothing)."""
        if not container_id:
            self.in_view = None
            return "OK"
        containers = self.scanner.world.containers
        if container_id not in containers:
            known = ", ".join(containers) or "none"
            return f"NG no container {container_id!r} on the line; containers: {known}"
        self.in_view = container_id
        return "OK"

    async def read(self) -> str:
        """One read of what is in view: the decoded data, or ``ERROR``."""
        if self.in_view is None:
            return NO_READ
        try:
            scan = await self.scanner.scan(self.in_view)
        except InstrumentError as exc:
            log.info("%s: no read: %s", self.scanner.where, exc)
            return NO_READ
        if not scan.data or "\r" in scan.data or "\n" in scan.data:
            log.info("%s: no readable label on %r", self.scanner.where, self.in_view)
            return NO_READ
        return scan.data

    async def serve_connection(self, stream: SocketStream) -> None:
        self.connections += 1
        connection = _Connection(self, stream)
        send, receive = anyio.create_memory_object_stream[str](max_buffer_size=math.inf)
        try:
            async with stream, anyio.create_task_group() as task_group:
                task_group.start_soon(connection.execute, receive)
                async with send:
                    if not await self._receive(connection, send):
                        task_group.cancel_scope.cancel()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass  # the client went away while a reply was on its way
        finally:
            self.connections -= 1

    async def _receive(self, connection: _Connection, lines: MemoryObjectSendStream[str]) -> bool:
        """Pass the client's commands on (LOFF at once); False when the connection broke."""
        receiver = BufferedByteReceiveStream(connection.stream)
        try:
            while True:
                try:
                    raw = await receiver.receive_until(b"\r", MAX_COMMAND_BYTES)
                except anyio.DelimiterNotFound:
                    await connection.reply(f"NG command over {MAX_COMMAND_BYTES} bytes")
                    return False
                try:
                    line = raw.decode("utf-8").strip("\n")
                except UnicodeDecodeError:
                    line = "\ufffd"  # answered as an unknown command, in turn
                if line.strip().upper() == "LOFF":
                    connection.stop_reading()
                lines.send_nowait(line)
        except (anyio.EndOfStream, anyio.IncompleteRead):
            return True  # the client has sent all it will: what it sent is still answered
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            return False


@asynccontextmanager
async def serve_scanner_tcp(
    scanner: SimBarcodeScanner, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[ScannerTcpServer]:
    """Serve ``scanner`` until the block ends (port 0: a free port); then close it all."""
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    server = ScannerTcpServer(scanner, listener)
    log.info("%s: TCP server mode on %s", scanner.where, server.endpoint)
    try:
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(listener.serve, server.serve_connection, task_group)
            try:
                yield server
            finally:
                task_group.cancel_scope.cancel()
    finally:
        await listener.aclose()
