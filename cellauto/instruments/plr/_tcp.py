"""PyLabRobot over TCP: a ``SerializingBackend`` speaking JSON lines, and the adapter on it.

:class:`TcpSerializingBackend` is PyLabRobot 0.2.2's ``SerializingBackend`` (each
operation serialized by PyLabRobot) whose ``send_command`` writes one JSON line
``{"id", "command", "data"}`` to a TCP socket and awaits the reply line
``{"id", "ok", "result" | "error"}``. A lost connection after a command was sent
raises, so :class:`~cellauto.instruments.plr.PlrLiquidHandler`'s in-doubt path applies
(the outcome of that command is unknown). Two commands of our own: ``hello`` (the
device's identity) and ``deck_state`` (the volume of every container it holds, in µL).

:class:`TcpPlrLiquidHandler` is the adapter on it: before each command it asks the
device for ``deck_state`` and brings its PyLabRobot deck in step (a container the device
holds is loaded as a bag, a destination it does not hold as a new tube), as
:class:`cellauto.sim.liquid_handler.SimLiquidHandler` does with its world in process.
The simulated device behind it: :mod:`cellauto.sim.plr_server`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

from pylabrobot.liquid_handling.backends.serializing_backend import SerializingBackend

from cellauto.errors import InstrumentError
from cellauto.instruments.liquid_handler import Transfer
from cellauto.instruments.plr._deck import ContainerSpec
from cellauto.instruments.plr.liquid_handler import PlrLiquidHandler, plr_identity

__all__ = ["TcpPlrLiquidHandler", "TcpSerializingBackend"]

_SYNC_TOLERANCE_UL = 1e-6


class TcpSerializingBackend(SerializingBackend):  # type: ignore[misc]  # untyped base
    """PyLabRobot's serialized operations as JSON lines over one TCP connection."""

    #: The least time a reply may take: an aspirate or dispense cycle takes tens of seconds.
    MIN_REPLY_TIMEOUT_S = 300.0

    def __init__(self, host: str, port: int, *, num_channels: int = 1, timeout_s: float = 30.0):
        super().__init__(num_channels=num_channels)
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self.reply_timeout_s = max(timeout_s, self.MIN_REPLY_TIMEOUT_S)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()

    @property
    def endpoint(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    async def _connect(self) -> None:
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), self.timeout_s
            )
        except OSError as exc:
            raise InstrumentError(f"liquid handler at {self.endpoint}: {exc}") from exc

    async def send_command(self, command: str, data: dict[str, Any] | None = None) -> Any:
        async with self._lock:
            if self._writer is None:
                await self._connect()
            assert self._reader is not None and self._writer is not None
            message = {"id": next(self._ids), "command": command, "data": data or {}}
            try:
                self._writer.write(json.dumps(message).encode() + b"\n")
                await self._writer.drain()
                line = await asyncio.wait_for(self._reader.readline(), self.reply_timeout_s)
            except (OSError, TimeoutError) as exc:
                self._drop()
                raise InstrumentError(
                    f"liquid handler at {self.endpoint}: {command} sent, no reply ({exc})"
                ) from exc
            if not line:
                self._drop()
                raise InstrumentError(
                    f"liquid handler at {self.endpoint}: connection closed after {command}"
                )
            reply = json.loads(line)
            if reply.get("id") != message["id"]:
                raise InstrumentError(f"liquid handler: reply {reply.get('id')} to {message['id']}")
            if not reply.get("ok"):
                raise InstrumentError(f"liquid handler at {self.endpoint}: {reply.get('error')}")
            return reply.get("result")

    def _drop(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def stop(self) -> None:
        if self._writer is not None:
            try:
                await self.send_command("stop")
            finally:
                self._drop()

    async def hello(self) -> dict[str, str]:
        return dict(await self.send_command("hello"))

    async def deck_state(self) -> dict[str, float]:
        """Every container the device holds: container id -> volume in µL."""
        return {k: float(v) for k, v in (await self.send_command("deck_state")).items()}


class TcpPlrLiquidHandler(PlrLiquidHandler):
    """The PyLabRobot adapter on a :class:`TcpSerializingBackend`, its deck kept in step
    with the device's containers (``deck_state``) before each command."""

    def __init__(
        self,
        backend: TcpSerializingBackend,
        serial: str = "PLR-0001",
        *,
        bag_capacity_ul: float = 1_000_000.0,
        tube_capacity_ul: float = 50_000.0,
        tip_racks: int = 2,
    ) -> None:
        super().__init__(plr_identity(backend, serial), backend=backend, tip_racks=tip_racks)
        self.backend = backend
        self.bag_capacity_ul = bag_capacity_ul
        self.tube_capacity_ul = tube_capacity_ul
        self._state: dict[str, float] = {}
        self._created: list[str] = []

    async def _run(
        self, method: str, source_id: str, destination_ids: list[str], volume_ul: float, field: str
    ) -> list[Transfer]:
        await self.setup()
        self._state = await self.backend.deck_state()
        return await super()._run(method, source_id, destination_ids, volume_ul, field)

    async def volume(self, container_id: str) -> float:
        await self._sync_all()
        return await super().volume(container_id)

    async def containers(self) -> dict[str, float]:
        await self._sync_all()
        return await super().containers()

    async def _sync_all(self) -> None:
        if self._lock.locked():
            return
        await self.setup()
        self._state = await self.backend.deck_state()
        self._sync(list(self._state))

    def _sync(self, container_ids: list[str]) -> None:
        """Device -> deck: load its containers as bags, copy their volumes to the trackers."""
        for container_id in container_ids:
            volume_ul = self._state.get(container_id)
            if volume_ul is None:
                continue
            resource = self.layout.containers.get(container_id)
            if resource is None:
                capacity = max(self.bag_capacity_ul, volume_ul)
                spec = ContainerSpec(container_id=container_id, kind="bag", capacity_ul=capacity)
                resource = self.layout.load(spec)
            if volume_ul > resource.max_volume:
                resource.max_volume = resource.tracker.max_volume = volume_ul
            if abs(resource.tracker.volume - volume_ul) > _SYNC_TOLERANCE_UL:
                resource.tracker.set_volume(volume_ul)

    def _begin(self, source_id: str, destination_ids: list[str]) -> None:
        self._created = []
        self._sync([source_id, *destination_ids])
        if source_id not in self._state:
            return  # unknown source: validation names it
        for container_id in destination_ids:
            if container_id in self._state or container_id in self.layout.containers:
                continue
            self.layout.load(
                ContainerSpec(container_id=container_id, capacity_ul=self.tube_capacity_ul)
            )
            self._created.append(container_id)

    def _abort(self) -> None:
        for container_id in self._created:
            self.layout.unload(container_id)
        self._created = []

    def _keep(self) -> None:
        self._created = []
