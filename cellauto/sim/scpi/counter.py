"""SCPI for a :class:`SimCellCounter` (docs/scpi.md, "Cell counter").

``SAMPle:ID`` selects a sample the simulated world knows by its id; ``SAMPle:DRAW``
(or ``SAMPle:DRAW?``, which answers the new sample's id) draws a sample from a
container of the simulated line, as an operator pipettes one from a tube, and selects
it, so that a plain VISA session can count without another instrument drawing first.
``INITiate`` starts the count as a task on the server (overlapped: the command returns
at once and status queries are answered meanwhile), ``FETCh?`` returns the last result.
"""

from __future__ import annotations

import logging

import anyio

from cellauto.errors import InstrumentError
from cellauto.instruments.cell_counter import CellCount
from cellauto.instruments.materials import Sample
from cellauto.instruments.visa.scpi_format import format_real, quote
from cellauto.sim.counter import SimCellCounter
from cellauto.sim.scpi.device import ScpiDevice
from cellauto.sim.scpi.errors import ScpiError
from cellauto.sim.scpi.program import Args, HeaderTable

__all__ = ["MAX_DRAW_ML", "MEASURING", "CounterScpi", "format_count"]

log = logging.getLogger(__name__)

#: STATus:OPERation bit 4: a count is in progress.
MEASURING = 1 << 4
#: The largest sample ``SAMPle:DRAW`` takes for a count, mL.
MAX_DRAW_ML = 10.0


def format_count(count: CellCount) -> str:
    """The ten-field ``FETCh?`` record."""
    return ",".join(
        [
            quote(count.sample_id),
            format_real(count.total_cells_per_ml),
            format_real(count.viable_cells_per_ml),
            format_real(count.viability_pct),
            format_real(count.mean_diameter_um),
            format_real(count.dilution),
            quote(count.operator),
            format_real(count.counted_at_process_time_s),
            quote(count.instrument_serial),
            quote(count.range_flag),
        ]
    )


class CounterScpi(ScpiDevice):
    """Serves a simulated cell counter."""

    def __init__(self, counter: SimCellCounter) -> None:
        self.counter = counter
        self._sample_id: str | None = None
        self._operator = "system"
        self._dilution = 1.0
        self._result: CellCount | None = None
        self._running: anyio.CancelScope | None = None
        self._finished = anyio.Event()
        self._finished.set()
        super().__init__(counter.identity)

    def register(self, table: HeaderTable) -> None:
        table.add("SAMPle:ID", self._select)
        table.add("SAMPle:ID?", self._selected)
        table.add("SAMPle:DRAW", self._draw)
        table.add("SAMPle:DRAW?", self._draw_query)
        table.add("SAMPle:OPERator", self._set_operator)
        table.add("SAMPle:OPERator?", self._get_operator)
        table.add("SAMPle:DILution", self._set_dilution)
        table.add("SAMPle:DILution?", self._get_dilution)
        table.add("INITiate", self._initiate)
        table.add("INITiate:IMMediate", self._initiate)
        table.add("ABORt", self._abort)
        table.add("FETCh?", self._fetch)

    async def operation_condition(self) -> int:
        return MEASURING if self._running is not None else 0

    async def operations_pending(self) -> bool:
        return self._running is not None

    async def wait_operations(self) -> None:
        await self._finished.wait()

    def reset(self) -> None:
        self._stop()
        self._sample_id, self._operator, self._result = None, "system", None
        self._dilution = 1.0

    async def _select(self, args: Args) -> None:
        args.expect(1)
        sample_id = args.string(0, "sample id")
        world = self.counter.world
        if sample_id not in world.samples and sample_id not in world.containers:  # or a tube
            raise ScpiError(110, f"{sample_id!r} is not on the line")
        self._sample_id = sample_id

    async def _draw(self, args: Args) -> None:
        await self._draw_query(args)

    async def _draw_query(self, args: Args) -> str:
        """Draw ``volume_ml`` from a container of the line into a new sample; select it."""
        args.expect(2)
        container_id = args.string(0, "container id")
        volume_ml = args.real(1, "volume_ml")
        world = self.counter.world
        container = world.containers.get(container_id)
        if container is None:
            known = ", ".join(world.containers) or "none"
            raise ScpiError(121, f"SAMP:DRAW: no container {container_id!r}; known: {known}")
        if self._running is not None:
            raise ScpiError(101, "a count is in progress; wait for it or send ABORt")
        limit = min(MAX_DRAW_ML, container.volume_ml)
        if not 0 < volume_ml <= limit:
            raise ScpiError(
                -222,
                f"SAMP:DRAW: {volume_ml:g} mL outside 0..{limit:g} mL "
                f"({container_id!r} holds {container.volume_ml:g} mL; at most "
                f"{MAX_DRAW_ML:g} mL a sample)",
            )
        sample = world.draw_sample(container, volume_ml, prefix=self.counter.identity.serial)
        self._sample_id = sample.sample_id
        log.info(
            "%s: drew %s (%g mL of %r)",
            self.counter.where,
            sample.sample_id,
            volume_ml,
            container_id,
        )
        return quote(sample.sample_id)

    async def _selected(self, args: Args) -> str:
        args.expect(0)
        return quote(self._sample_id or "")

    async def _set_operator(self, args: Args) -> None:
        args.expect(1)
        operator = args.string(0, "operator")
        if not operator:
            raise ScpiError(-224, "the operator name is empty")
        self._operator = operator

    async def _get_operator(self, args: Args) -> str:
        args.expect(0)
        return quote(self._operator)

    async def _set_dilution(self, args: Args) -> None:
        args.expect(1)
        dilution = args.real(0, "dilution")
        if not 1.0 <= dilution <= 1000.0:
            raise ScpiError(-222, f"SAMP:DIL: {dilution:g} outside 1..1000")
        self._dilution = dilution

    async def _get_dilution(self, args: Args) -> str:
        args.expect(0)
        return format_real(self._dilution)

    async def _initiate(self, args: Args) -> None:
        args.expect(0)
        if self._running is not None:
            raise ScpiError(101, "a count is in progress; wait for it or send ABORt")
        if self._sample_id is None:
            raise ScpiError(111, "select the sample with SAMPle:ID first")
        sample = self._sample(self._sample_id)
        self._result = None
        self._running, self._finished = anyio.CancelScope(), anyio.Event()
        self.operation_started(MEASURING)
        self.task_group.start_soon(
            self._count, sample, self._operator, self._dilution, self._running
        )

    async def _count(
        self, sample: Sample, operator: str, dilution: float, scope: anyio.CancelScope
    ) -> None:
        try:
            with scope:
                self._result = await self.counter.count(
                    sample, operator=operator, dilution=dilution
                )
        except InstrumentError as exc:
            self.push_error(112, str(exc))
        except Exception as exc:  # a simulator bug must not take the server down
            log.exception("%s: count of %r failed", self.counter.where, sample.sample_id)
            self.push_error(112, f"internal error: {exc!r}")
        finally:
            if self._running is scope:
                self._running = None
                self._finished.set()
        if scope.cancelled_caught:
            log.info("%s: count of %r aborted", self.counter.where, sample.sample_id)

    async def _abort(self, args: Args) -> None:
        args.expect(0)
        self._stop()

    def _stop(self) -> None:
        if self._running is not None:
            self._running.cancel()
            self._running = None
            self._finished.set()

    async def _fetch(self, args: Args) -> str:
        args.expect(0)
        if self._running is not None:
            raise ScpiError(102, "a count is in progress")
        if self._result is None:
            raise ScpiError(102, "no count since the last INITiate or *RST")
        return format_count(self._result)

    def _sample(self, sample_id: str) -> Sample:
        world = self.counter.world
        tube = world.samples.get(sample_id) or world.containers[sample_id]
        origin = tube.history[-1].removeprefix("from ") if tube.history else "unknown"
        return Sample(
            sample_id=sample_id,
            source_container_id=origin or "unknown",
            volume_ml=max(tube.volume_ml, 1e-9),
            drawn_at_process_time_s=world.clock.now_s(),
        )
