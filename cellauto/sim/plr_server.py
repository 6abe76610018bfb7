"""A simulated liquid handler served over TCP, for PyLabRobot's serialized operations.

The device end of :class:`cellauto.instruments.plr.TcpSerializingBackend`: one JSON line
per command (``{"id", "command", "data"}``), one reply line (``{"id", "ok", "result" |
"error"}``). It applies PyLabRobot's ``pick_up_tips``/``aspirate``/``dispense``/
``drop_tips`` to the simulated world behind a :class:`SimLiquidHandler` (design §5.3):
an aspirate takes the volume from the container named by ``resource_name`` into the
channel's tip (cells move with the volume), a dispense pours the tip into its
destination (a container the world does not know is a new tube), and each dispense
takes the handler's ``seconds_per_cycle`` of process time. ``hello`` gives the identity,
``deck_state`` the volume of every world container (µL). Faults armed on the handler
(a disconnect, a command failure) act on each operation as in process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio

from cellauto.errors import InstrumentError
from cellauto.sim.liquid_handler import SimLiquidHandler
from cellauto.sim.material import Container

__all__ = ["PlrServer", "serve_plr"]

log = logging.getLogger(__name__)
_UL_PER_ML = 1000.0


class PlrServer:
    """Applies serialized PyLabRobot operations to ``handler``'s world."""

    def __init__(self, handler: SimLiquidHandler) -> None:
        self.handler = handler
        self.world = handler.world
        self._tips: dict[int, Container | None] = {}
        self._server: asyncio.Server | None = None
        self.port = 0
        #: Commands served, in order (tests and the bench read it).
        self.commands: list[str] = []

    @property
    def endpoint(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                message = json.loads(line)
                reply: dict[str, Any] = {"id": message.get("id")}
                try:
                    reply["result"] = await self.apply(message["command"], message.get("data"))
                    reply["ok"] = True
                except Exception as exc:  # the device says what went wrong
                    reply["ok"], reply["error"] = False, f"{type(exc).__name__}: {exc}"
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:  # the server closing under an open connection
            pass
        finally:
            writer.close()

    async def apply(self, command: str, data: dict[str, Any] | None) -> Any:
        """Do one command; its result (JSON-able)."""
        self.commands.append(command)
        data = data or {}
        if command == "hello":
            identity = self.handler.identity
            return {"vendor": identity.vendor, "model": identity.model, "serial": identity.serial}
        if command == "deck_state":
            return {cid: c.volume_ml * _UL_PER_ML for cid, c in self.world.containers.items()}
        if command in ("setup", "stop"):
            return None
        channels = zip(data.get("channels", []), data.get("use_channels", []), strict=False)
        if command in ("pick_up_tips", "drop_tips"):
            self.handler.guard(command, command=True)
            for _, channel in channels:
                self._tips[channel] = None  # a fresh tip, or the tip (and what it held) dropped
            return None
        if command == "aspirate":
            self.handler.guard(command, command=True)
            for op, channel in channels:
                source = self.world.container(op["resource_name"], where=self.handler.where)
                volume_ml = float(op["volume"]) / _UL_PER_ML
                if volume_ml > source.volume_ml + 1e-9:
                    raise InstrumentError(f"{source.container_id!r} holds less than {volume_ml} mL")
                self._tips[channel] = source.take(volume_ml, f"{self.handler.identity.serial} tip")
            return None
        if command == "dispense":
            self.handler.guard(command, command=True)
            for op, channel in channels:
                name = op["resource_name"]
                destination = self.world.containers.get(name)
                if destination is None:
                    destination = self.world.add_container(Container(container_id=name))
                held = self._tips.get(channel)
                if held is not None:
                    destination.add(held)
                    self._tips[channel] = None
            await anyio.sleep(self.handler.seconds_per_cycle)
            return None
        raise InstrumentError(f"{command!r} is not supported by the simulated liquid handler")


@contextlib.asynccontextmanager
async def serve_plr(handler: SimLiquidHandler, *, port: int = 0) -> AsyncIterator[PlrServer]:
    """Serve ``handler`` on 127.0.0.1 (port 0: a free one) while the context is open."""
    server = PlrServer(handler)
    await server.start(port)
    log.info("serving the liquid handler %s at %s", handler.identity.serial, server.endpoint)
    try:
        yield server
    finally:
        await server.close()
