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
from pathlib import Path
from typing import Literal

import anyio
from asyncua import ua
from pydantic import SecretStr

from cellauto.clock import Clock
from cellauto.instruments.base import require_range
from cellauto.instruments.cryo_storage import (
    CryoStorage,
    StorageConditions,
    StoragePosition,
    StoredItem,
)
from cellauto.instruments.opcua.connection import ConnectionGap, GapCallback
from cellauto.instruments.opcua.link import DeviceLink, LinkOptions

__all__ = ["OpcUaCryoStorage"]

_PATHS = {
    name: f"own:Commands/own:{name}"
    for name in ("Store", "Retrieve", "ReadConditions", "GetInventory")
}


def _text(value: str) -> ua.Variant:
    return ua.Variant(str(value), ua.VariantType.String)


class OpcUaCryoStorage(CryoStorage):
    """A LADS LN2 storage freezer reached over OPC UA (create with :meth:`connect`)."""

    def __init__(self, link: DeviceLink) -> None:
        super().__init__(link.nodes.identity)
        self._link = link

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        security: Literal["none", "Basic256Sha256"] = "none",
        certificate: Path | str | None = None,
        private_key: Path | str | None = None,
        server_certificate: Path | str | None = None,
        user: str | None = None,
        password: str | None = None,
        timeout_s: float = 10.0,
        clock: Clock | None = None,
        on_gap: GapCallback | None = None,
        reconnect_max_delay_s: float = 10.0,
        poll_interval_s: float = 60.0,
        retry_within_s: float = 60.0,
        outage_limit_s: float = 3600.0,
        device: str | None = None,
        unit: str | None = None,
    ) -> OpcUaCryoStorage:
        """Connect and resolve the device's nodes (options as for OpcUaBioreactor)."""
        options = LinkOptions(
            url=url, security=security, certificate=certificate, private_key=private_key,
            server_certificate=server_certificate, user=user,
            password=SecretStr(password) if password is not None else None,
            timeout_s=timeout_s, reconnect_max_delay_s=reconnect_max_delay_s,
            poll_interval_s=poll_interval_s, retry_within_s=retry_within_s,
            outage_limit_s=outage_limit_s, device=device, unit=unit,
        )  # fmt: skip
        link = await DeviceLink.open(
            cls.interface_name, _PATHS, options, clock=clock, on_gap=on_gap
        )
        return cls(link)

    async def aclose(self) -> None:
        await self._link.aclose()

    async def __aenter__(self) -> OpcUaCryoStorage:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def gaps(self) -> list[ConnectionGap]:
        """Connection outages so far (also reported to ``on_gap``)."""
        return self._link.gaps

    async def _query(self, name: str, what: str) -> str:
        nodes = self._link.nodes
        (text,) = await self._link.conn.call(nodes["Commands"], nodes[name], [], what)
        return str(text)

    async def conditions(self) -> StorageConditions:
        text = await self._query("ReadConditions", "conditions")
        return StorageConditions.model_validate_json(text)

    async def store(self, container_id: str, position: StoragePosition) -> StoredItem:
        args = [
            _text(container_id),
            _text(position.rack),
            ua.Variant(position.box, ua.VariantType.Int32),
            ua.Variant(position.slot, ua.VariantType.Int32),
        ]
        result = await self._link.operations.run(self._link.nodes["Store"], args, "store")
        return StoredItem.model_validate(result)

    async def retrieve(self, container_id: str) -> StoredItem:
        result = await self._link.operations.run(
            self._link.nodes["Retrieve"], [_text(container_id)], "retrieve"
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
