"""OpcUaCryoStorage: the CryoStorage interface over OPC UA (LADS device).

``store`` and ``retrieve`` are device operations (:mod:`.operations`): ``Commands/
Store(OperationId, ContainerId, Rack, Box, Slot)`` and ``Commands/Retrieve(OperationId,
ContainerId)`` return at once; the :class:`StoredItem` arrives in ``LastOperation``
once the container is in (or out), after the handling time. A lost reply to the start
is resent with the same operation id: the device stores a container at most once.
``conditions`` asks the device for a reading (``ReadConditions``, one round trip: the
numbers are those of the in-process instrument for the same seed) and ``inventory``
for its exact inventory (``GetInventory``). Refusals (unknown container, position
taken, freezer too warm) carry the in-process instrument's message and error class
(:mod:`.status`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Unpack

import anyio
from asyncua import ua

from cellauto.instruments.base import require_range
from cellauto.instruments.cryo_storage import (
    CryoStorage,
    StorageConditions,
    StoragePosition,
    StoredItem,
)
from cellauto.instruments.opcua import _ua
from cellauto.instruments.opcua.link import ConnectOptions, OpcUaAdapter, open_link

__all__ = ["OpcUaCryoStorage"]

_PATHS = {
    name: f"own:Commands/own:{name}"
    for name in ("Store", "Retrieve", "ReadConditions", "GetInventory")
}


class OpcUaCryoStorage(OpcUaAdapter, CryoStorage):
    """A LADS LN2 storage freezer reached over OPC UA (create with :meth:`connect`)."""

    @classmethod
    async def connect(cls, url: str, **options: Unpack[ConnectOptions]) -> OpcUaCryoStorage:
        """Connect and resolve the device's nodes (options: :class:`ConnectOptions`)."""
        return cls(await open_link(cls.interface_name, _PATHS, url, options))

    async def _query(self, name: str, what: str) -> str:
        nodes = self._link.nodes
        (text,) = await self._link.conn.call(nodes["Commands"], nodes[name], [], what)
        return str(text)

    async def conditions(self) -> StorageConditions:
        text = await self._query("ReadConditions", "conditions")
        return StorageConditions.model_validate_json(text)

    async def store(self, container_id: str, position: StoragePosition) -> StoredItem:
        args = [
            _ua.text(container_id),
            _ua.text(position.rack),
            ua.Variant(position.box, ua.VariantType.Int32),
            ua.Variant(position.slot, ua.VariantType.Int32),
        ]
        result = await self._link.operations.run(self._link.nodes["Store"], args, "store")
        return StoredItem.model_validate(result)

    async def retrieve(self, container_id: str) -> StoredItem:
        result = await self._link.operations.run(
            self._link.nodes["Retrieve"], [_ua.text(container_id)], "retrieve"
        )
        return StoredItem.model_validate(result)

    async def inventory(self) -> list[StoredItem]:
        text = await self._query("GetInventory", "inventory")
        return [StoredItem.model_validate(item) for item in json.loads(text)]

    async def conditions_stream(self, interval_s: float) -> AsyncIterator[StorageConditions]:
        require_range(self, "interval_s", interval_s, low=1.0, unit="s")
        while True:
            yield await self.conditions()
            await anyio.sleep(interval_s)
