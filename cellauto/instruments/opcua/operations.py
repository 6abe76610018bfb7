"""Running a device command that takes process time: start it, then await its outcome.

The command method only starts an operation under an id the adapter makes up (see
:mod:`cellauto.sim.opcua.operations`); the outcome arrives as a data-change
notification of ``Commands/LastOperation`` the moment the device finishes, so the
adapter returns at the same process time as the in-process instrument. As a safety
net the adapter asks ``GetOperation`` every ``poll_interval_s`` of process time
(a missed notification, an outage).

A lost reply to the start is retried with the same operation id once the connection
is back (within ``retry_within_s``, real seconds: a network wait): the device starts an
operation id at most once, so the physical action happens once. An outage while the
device works does not fail the command; only an outage longer than ``outage_limit_s``
does, with an error saying the outcome is unknown and naming the operation id.
``poll_interval_s`` and ``outage_limit_s`` are process time: they bound how long the
*process* goes unwatched, not how long the network may take.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from asyncua import ua

from cellauto.errors import InstrumentError
from cellauto.instruments.opcua.connection import (
    OpcUaConnection,
    OpcUaConnectionLostError,
    OpcUaDisconnectedError,
)
from cellauto.instruments.opcua.status import kind_error
from cellauto.instruments.opcua.wire import OperationRecord

__all__ = ["OperationRunner", "call_idempotent"]

log = logging.getLogger(__name__)


async def call_idempotent(
    conn: OpcUaConnection,
    object_id: ua.NodeId,
    method_id: ua.NodeId,
    args: list[ua.Variant],
    what: str,
    *,
    retry_within_s: float,
    key: str,
) -> list[Any]:
    """Call; if the reply was lost, call again (same ``key``) once reconnected."""
    try:
        return await conn.call(object_id, method_id, args, what)
    except OpcUaConnectionLostError as lost:
        log.warning("%s; retrying with the same key %s once reconnected", lost, key)
        if not await conn.wait_connected(retry_within_s):
            raise OpcUaConnectionLostError(
                f"{lost}; not reconnected within {retry_within_s:g} s. Sending it again with "
                f"the same key {key!r} is safe: the device acts on a key at most once"
            ) from lost
        return await conn.call(object_id, method_id, args, what)


class OperationRunner:
    """Starts operations on one device and awaits their outcome."""

    def __init__(
        self,
        conn: OpcUaConnection,
        commands: ua.NodeId,
        get_operation: ua.NodeId,
        *,
        poll_interval_s: float = 60.0,
        retry_within_s: float = 60.0,
        outage_limit_s: float = 3600.0,
    ) -> None:
        if min(poll_interval_s, retry_within_s, outage_limit_s) <= 0:
            raise ValueError("poll_interval_s, retry_within_s and outage_limit_s must be > 0")
        self.conn = conn
        self.commands = commands
        self.get_operation = get_operation
        self.poll_interval_s = poll_interval_s
        self.retry_within_s = retry_within_s
        self.outage_limit_s = outage_limit_s
        self._waiting: dict[str, asyncio.Future[OperationRecord]] = {}

    def notified(self, node_id: ua.NodeId, value: Any, data: ua.DataValue) -> None:
        """Subscription callback of ``LastOperation``."""
        if not value:
            return
        try:
            record = OperationRecord.model_validate_json(value)
        except ValueError:
            log.warning("%s: unreadable LastOperation %r", self.conn.where, value[:200])
            return
        future = self._waiting.get(record.operation_id)
        if future is not None and not future.done() and record.state != "running":
            future.set_result(record)

    async def run(self, method_id: ua.NodeId, args: list[ua.Variant], what: str) -> Any:
        """Start ``method_id(operation id, *args)``; the result (JSON form) once complete."""
        operation_id = f"op-{uuid.uuid4().hex[:20]}"
        future: asyncio.Future[OperationRecord] = asyncio.get_running_loop().create_future()
        self._waiting[operation_id] = future
        try:
            await call_idempotent(
                self.conn, self.commands, method_id, [ua.Variant(operation_id), *args], what,
                retry_within_s=self.retry_within_s, key=operation_id,
            )  # fmt: skip
            record = await self._outcome(operation_id, future, what)
        finally:
            self._waiting.pop(operation_id, None)
        if record.state == "failed":
            raise kind_error(record.error_kind, record.error or f"{what} failed")
        return record.result

    async def _outcome(
        self, operation_id: str, future: asyncio.Future[OperationRecord], what: str
    ) -> OperationRecord:
        loop = asyncio.get_running_loop()
        down_since: float | None = None
        while True:
            done, _ = await asyncio.wait({future}, timeout=self.poll_interval_s)
            if done:
                return future.result()
            try:
                record = await self.poll(operation_id)
            except (OpcUaDisconnectedError, OpcUaConnectionLostError):
                down_since = loop.time() if down_since is None else down_since
                if loop.time() - down_since > self.outage_limit_s:
                    raise InstrumentError(
                        f"{self.conn.where}: no connection for {self.outage_limit_s:g} s while "
                        f"{what} (operation {operation_id}) was under way; its outcome is "
                        "unknown: check the device"
                    ) from None
                continue
            down_since = None
            if record.state != "running":
                return record

    async def poll(self, operation_id: str) -> OperationRecord:
        (text,) = await self.conn.call(
            self.commands, self.get_operation, [ua.Variant(operation_id)], "GetOperation"
        )
        return OperationRecord.model_validate_json(text)
