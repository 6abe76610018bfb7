"""A line-based SCPI server on TCP (a "raw socket" instrument, VISA ``::SOCKET``).

``serve_scpi(device)`` listens on 127.0.0.1 (port 0: any free port), reads program
messages terminated by ``\\n`` and answers each message that holds a query with one
line. Connections share the device (one instrument, one error queue); each is served
in order, so a command is complete before the next message of that connection is read.

Each message is handled inside :func:`cellauto.clock.serving_outside`: on a virtual
clock, time may jump while a request from outside is served here (a count's 90 s),
but not while a client still waits for the server to receive its message.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from anyio.abc import Listener, SocketAttribute, SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream

from cellauto.clock import serving_outside
from cellauto.sim.scpi.device import ScpiDevice

__all__ = ["MAX_MESSAGE_BYTES", "ScpiServer", "serve_scpi"]

log = logging.getLogger(__name__)

#: A longer message is refused (-102) and the connection closed: it cannot be resynchronised.
MAX_MESSAGE_BYTES = 65_536


class ScpiServer:
    """A running server: where it listens and how many clients are connected."""

    def __init__(self, device: ScpiDevice, listener: Listener[SocketStream]) -> None:
        self.device = device
        self.host: str = listener.extra(SocketAttribute.local_address)[0]
        self.port: int = listener.extra(SocketAttribute.local_port)
        self.connections = 0
        self._listener = listener

    @property
    def resource_name(self) -> str:
        """The VISA resource name of this server."""
        return f"TCPIP0::{self.host}::{self.port}::SOCKET"

    async def serve_connection(self, stream: SocketStream) -> None:
        """Answer one client until it disconnects."""
        self.connections += 1
        receiver = BufferedByteReceiveStream(stream)
        try:
            async with stream:
                while True:
                    try:
                        raw = await receiver.receive_until(b"\n", MAX_MESSAGE_BYTES)
                    except anyio.DelimiterNotFound:
                        self.device.push_error(-102, f"message over {MAX_MESSAGE_BYTES} bytes")
                        return
                    with serving_outside():
                        reply = await self.device.execute(raw)
                        if reply is not None:
                            await stream.send(reply.encode("utf-8") + b"\n")
        except (
            anyio.EndOfStream,
            anyio.IncompleteRead,
            anyio.BrokenResourceError,
            anyio.ClosedResourceError,
        ):
            pass  # the client went away
        finally:
            self.connections -= 1


@asynccontextmanager
async def serve_scpi(
    device: ScpiDevice, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[ScpiServer]:
    """Serve ``device`` until the block ends; then close every connection and operation."""
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    server = ScpiServer(device, listener)
    log.info(
        "%s %s: SCPI on %s", device.identity.model, device.identity.serial, server.resource_name
    )
    try:
        async with anyio.create_task_group() as task_group:
            device.bind(task_group)
            task_group.start_soon(listener.serve, server.serve_connection, task_group)
            try:
                yield server
            finally:
                task_group.cancel_scope.cancel()
    finally:
        device.bind(None)
        await listener.aclose()
