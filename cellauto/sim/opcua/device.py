"""A LADS device server with background operations (base of the bioreactor and processor).

Adds to :class:`~cellauto.sim.opcua.server.SimOpcUaServer` the device skeleton
(:mod:`.skeleton`), the instrument's :class:`~.operations.OperationLog` published in
``Commands/LastOperation`` and queried with ``Commands/GetOperation``, a command
method factory (:meth:`DeviceServer.operation_method`) and the functional-unit state.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

from asyncua import ua

from cellauto.instruments.opcua.lads import FunctionalState
from cellauto.instruments.opcua.wire import OperationRecord
from cellauto.sim.opcua.builder import SpaceBuilder, argument
from cellauto.sim.opcua.operations import OperationLog, operation_log
from cellauto.sim.opcua.server import SimOpcUaServer
from cellauto.sim.opcua.skeleton import DevicePaths, add_device

__all__ = ["DeviceServer"]

log = logging.getLogger(__name__)

_STRING = ua.VariantType.String

#: An operation's action from the method's decoded input values (after the id).
Action = Callable[..., Callable[[], Awaitable[Any]]]


def _plain(value: Any) -> Any:
    """An argument as recorded: NaN ("not given") as None, so that a repeat compares equal."""
    return None if isinstance(value, float) and math.isnan(value) else value


class DeviceServer(SimOpcUaServer):
    """A LADS device: skeleton, operations, functional-unit state."""

    paths: DevicePaths

    @property
    def operations(self) -> OperationLog:
        """The instrument's operation log (shared by every server of the instrument)."""
        return operation_log(self.sim, self.sim.world.clock, self.where)

    async def build(self, builder: SpaceBuilder) -> None:
        self.paths = add_device(
            builder, self.device_key, self.sim.identity, self.handler(self._get_operation, 1)
        )
        await self.build_unit(builder, self.paths.unit)

    async def build_unit(self, builder: SpaceBuilder, unit: str) -> None:
        """Add the unit's functions, program manager and commands."""
        raise NotImplementedError

    async def started(self) -> None:
        self.operations.add_listener(self._publish_operation)
        await self.refresh_unit_state()

    async def stopping(self) -> None:
        self.operations.remove_listener(self._publish_operation)

    async def _get_operation(self, operation_id: str) -> list[ua.Variant]:
        record = self.operations.get(operation_id)
        return [ua.Variant(record.model_dump_json(), _STRING)]

    async def _publish_operation(self, record: OperationRecord) -> None:
        await self.write(self.paths.last_operation, record.model_dump_json(), _STRING)
        if record.state != "running":
            await self.operation_ended(record)
        await self.refresh_unit_state()

    async def operation_ended(self, record: OperationRecord) -> None:
        """Called when an operation ended (update what it changed)."""

    def operation_method(
        self,
        builder: SpaceBuilder,
        name: str,
        inputs: list[ua.Argument],
        action: Action,
        description: str,
    ) -> str:
        """A command method ``name(OperationId, *inputs)`` starting ``action(*values)``."""
        labels = [arg.Name for arg in inputs]

        async def start(operation_id: str, *values: Any) -> None:
            arguments = {k: _plain(v) for k, v in zip(labels, values, strict=True)}
            await self.operations.start(operation_id, name, arguments, action(*values))

        start.__name__ = name
        first = argument("OperationId", _STRING, "caller's id; repeating it starts nothing new")
        return builder.add_method(
            self.paths.commands, ua.QualifiedName(name, builder.ns.own),
            self.handler(start, len(inputs) + 1), [first, *inputs], [],
            description=f"{description} (started in the background; see LastOperation)",
        )  # fmt: skip

    def unit_state(self) -> FunctionalState:
        """The functional unit's LADS state now."""
        return FunctionalState.STOPPED

    async def refresh_unit_state(self) -> None:
        state = self.unit_state()
        current = f"{self.paths.unit_state}/CurrentState"
        await self.write(
            current, ua.LocalizedText(state.display_name), ua.VariantType.LocalizedText
        )
        await self.write(f"{current}/Number", state.value, ua.VariantType.UInt32)
