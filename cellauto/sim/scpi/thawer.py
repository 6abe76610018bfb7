"""SCPI for a :class:`SimThawer` (docs/scpi.md, "Thawer").

``THAW "<id>"`` thaws a frozen container, overlapped: the thaw takes the thawer's few
minutes of process time (STATus:OPERation bit 8, THAWING), and queries are answered
meanwhile. The device remembers every thaw it did: ``THAW:RESult? "<id>"`` says whether
it thawed that container (``NONE``), is thawing it (``THAWING``) or has (``DONE``, with
the result). That is how a controller that lost the reply to a ``THAW`` in a crash
finds the thaw done instead of thawing again (a container is thawed once:
:class:`~cellauto.instruments.visa.thawer.VisaThawer`). A second ``THAW`` of a
container already thawed or thawing is refused before the thawer is touched.
"""

from __future__ import annotations

import logging

import anyio

from cellauto.errors import InstrumentError
from cellauto.instruments.thawer import ThawResult
from cellauto.instruments.visa.scpi_format import format_optional_real, quote
from cellauto.sim.scpi.device import ScpiDevice
from cellauto.sim.scpi.errors import ScpiError
from cellauto.sim.scpi.program import Args, HeaderTable
from cellauto.sim.thaw import SimThawer

__all__ = ["THAWING", "ThawerScpi", "format_thaw"]

log = logging.getLogger(__name__)

#: STATus:OPERation bit 8 (instrument-specific): a container is thawing.
THAWING = 1 << 8


def format_thaw(state: str, container_id: str, result: ThawResult | None) -> str:
    """``<state>,"<id>",<duration_s>,<final_c>,<process_time_s>`` (9.91E+37 until DONE)."""
    return ",".join(
        [
            state,
            quote(container_id),
            format_optional_real(result.duration_s if result else None),
            format_optional_real(result.final_temperature_c if result else None),
            format_optional_real(result.process_time_s if result else None),
        ]
    )


class ThawerScpi(ScpiDevice):
    """Serves a simulated thawer; one thaw at a time."""

    def __init__(self, thawer: SimThawer) -> None:
        self.thawer = thawer
        #: Every thaw this device did, by container id (the device's own memory).
        self.thawed: dict[str, ThawResult] = {}
        self._thawing: str | None = None
        self._finished = anyio.Event()
        self._finished.set()
        super().__init__(thawer.identity)

    def register(self, table: HeaderTable) -> None:
        table.add("THAW", self._thaw)
        table.add("THAW:STATe?", self._state)
        table.add("THAW:RESult?", self._result)

    async def operation_condition(self) -> int:
        return THAWING if self._thawing is not None else 0

    async def operations_pending(self) -> bool:
        return self._thawing is not None

    async def wait_operations(self) -> None:
        await self._finished.wait()

    async def _state(self, args: Args) -> str:
        """``<state>,"<id>"``: ``THAWING`` and the container, or ``IDLE`` and ""."""
        args.expect(0)
        if self._thawing is None:
            return f"IDLE,{quote('')}"
        return f"THAWING,{quote(self._thawing)}"

    async def _result(self, args: Args) -> str:
        args.expect(1)
        container_id = args.string(0, "container id")
        if container_id == self._thawing:
            return format_thaw("THAWING", container_id, None)
        result = self.thawed.get(container_id)
        return format_thaw("DONE" if result else "NONE", container_id, result)

    async def _thaw(self, args: Args) -> None:
        args.expect(1)
        container_id = args.string(0, "container id")
        if self._thawing is not None:
            raise ScpiError(101, f"thawing {self._thawing!r}; wait for its end")
        if container_id in self.thawed:
            raise ScpiError(
                -221, f"THAW: {container_id!r} was thawed here before; a container is thawed once"
            )
        container = self.thawer.world.containers.get(container_id)
        if container is None:
            raise ScpiError(121, f"THAW: no container {container_id!r} in the thawer")
        if container.frozen is None or container.frozen.thawed:
            raise ScpiError(-221, f"THAW: {container_id!r} is not frozen")
        self._thawing, self._finished = container_id, anyio.Event()
        self.operation_started(THAWING)
        self.task_group.start_soon(self._run, container_id)

    async def _run(self, container_id: str) -> None:
        try:
            self.thawed[container_id] = await self.thawer.thaw(container_id)
        except InstrumentError as exc:
            self.push_error(100, str(exc))
        except Exception as exc:  # a simulator bug must not take the server down
            log.exception("%s: thaw of %r failed", self.thawer.where, container_id)
            self.push_error(100, f"internal error: {exc!r}")
        finally:
            self._thawing = None
            self._finished.set()
