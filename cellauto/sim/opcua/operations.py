"""The device's memory of accepted commands: long actions run in the background.

A command that takes process time (seeding takes 10 min, a harvest 30 min) must not
keep its OPC UA method call open: the server handles one connection's requests in
order, so a long call would hold up the client's keep-alive probe and every other
request (asyncua would declare the connection dead). So a command method only
*starts* an operation under the caller's operation id and returns at once; the
action runs as a task on the simulation's loop; its outcome is published in the
``LastOperation`` variable (clients subscribe) and kept for ``GetOperation``.

The operation id is the idempotency key: a second start with the same id and the
same arguments starts nothing and reports the first one (a client that lost the
reply may safely send again); the same id with other arguments is refused.

A refusal the instrument raises before it starts working (a missing container, a
value out of range, a simulated fault) is reported by the start itself: the action
is given one loop turn to reach its first wait before the method returns.

The log belongs to the simulated instrument, not to a server: a server restarted on
the same instrument (:func:`operation_log`) still knows what it accepted.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel

from cellauto.clock import Clock
from cellauto.errors import InstrumentError
from cellauto.instruments.opcua.status import error_kind
from cellauto.instruments.opcua.wire import OperationRecord

__all__ = ["OperationLog", "operation_log"]

log = logging.getLogger(__name__)

Listener = Callable[[OperationRecord], Awaitable[None]]


class OperationLog:
    """Operations of one instrument by id, with listeners told of every change."""

    def __init__(self, clock: Clock, where: str) -> None:
        self.clock = clock
        self.where = where
        self.records: dict[str, OperationRecord] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._errors: dict[str, BaseException] = {}
        self._listeners: list[Listener] = []

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def get(self, operation_id: str) -> OperationRecord:
        try:
            return self.records[operation_id]
        except KeyError:
            raise InstrumentError(
                f"{self.where}: no operation {operation_id!r}; it was never started here"
            ) from None

    async def start(
        self,
        operation_id: str,
        command: str,
        arguments: dict[str, Any],
        action: Callable[[], Awaitable[Any]],
    ) -> OperationRecord:
        """Start ``action`` as ``operation_id``; raises at once what it refuses at once."""
        if not operation_id:
            raise ValueError(f"{self.where}: {command} needs an operation id")
        known = self.records.get(operation_id)
        if known is not None:
            if (known.command, known.arguments) != (command, arguments):
                raise InstrumentError(
                    f"{self.where}: operation id {operation_id!r} was used for {known.command} "
                    f"{known.arguments}; use a new id for {command} {arguments}"
                )
            if operation_id in self._errors and known.state == "failed":
                raise self._errors[operation_id]
            return known
        record = OperationRecord(
            operation_id=operation_id,
            command=command,
            arguments=arguments,
            state="running",
            started_process_time_s=self.clock.now_s(),
        )
        self.records[operation_id] = record
        task = asyncio.get_running_loop().create_task(self._run(record, action))
        self._tasks[operation_id] = task
        await asyncio.sleep(0)  # the action runs up to its first wait (or its refusal)
        if task.done() and operation_id in self._errors:
            raise self._errors[operation_id]
        current = self.records[operation_id]
        if current.state == "running":  # else the task has told its outcome already
            await self._tell(current)
        return current

    async def _run(self, record: OperationRecord, action: Callable[[], Awaitable[Any]]) -> None:
        update: dict[str, Any]
        try:
            result = await action()
        except Exception as exc:
            kind = error_kind(exc)
            if kind is None:
                log.exception("%s: %s %s crashed", self.where, record.command, record.operation_id)
            self._errors[record.operation_id] = exc
            update = {"state": "failed", "error": str(exc), "error_kind": kind or "instrument"}
        else:
            payload = result.model_dump(mode="json") if isinstance(result, BaseModel) else result
            update = {"state": "complete", "result": payload}
        finally:
            self._tasks.pop(record.operation_id, None)
        done = record.model_copy(update={**update, "ended_process_time_s": self.clock.now_s()})
        self.records[record.operation_id] = done
        log.info("%s: %s %s %s", self.where, done.command, done.operation_id, done.state)
        await self._tell(done)

    async def _tell(self, record: OperationRecord) -> None:
        for listener in list(self._listeners):
            try:
                await listener(record)
            except Exception:
                log.exception("%s: listener failed on %s", self.where, record.operation_id)

    @property
    def running(self) -> list[str]:
        return list(self._tasks)


_logs: weakref.WeakKeyDictionary[Any, OperationLog] = weakref.WeakKeyDictionary()


def operation_log(instrument: Any, clock: Clock, where: str) -> OperationLog:
    """The operation log of a simulated instrument (made on first use)."""
    found = _logs.get(instrument)
    if found is None:
        found = _logs[instrument] = OperationLog(clock, where)
    return found
