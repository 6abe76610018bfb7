"""VisaCellCounter: a cell counter reached over VISA with the SCPI set of docs/scpi.md."""

from __future__ import annotations

import anyio

from cellauto.errors import InstrumentError
from cellauto.instruments.base import InstrumentIdentity, require_range
from cellauto.instruments.cell_counter import CellCount, CellCounter
from cellauto.instruments.materials import Sample
from cellauto.instruments.visa._adapter import VisaAdapter, reply_model
from cellauto.instruments.visa.overdue import Overdue
from cellauto.instruments.visa.scpi_format import format_real, quote
from cellauto.instruments.visa.scpi_reply import parse_int, parse_real, parse_record, parse_string
from cellauto.instruments.visa.session import VisaSession

__all__ = ["MEASURING_BIT", "VisaCellCounter", "parse_count"]

#: STATus:OPERation:CONDition? bit 4 (value 16): a count is in progress.
MEASURING_BIT = 1 << 4

_COUNT_FIELDS = (
    parse_string,  # sample id
    parse_real,  # total cells/mL
    parse_real,  # viable cells/mL
    parse_real,  # viability %
    parse_real,  # mean diameter µm
    parse_real,  # dilution
    parse_string,  # operator
    parse_real,  # counted at, process time s
    parse_string,  # instrument serial
    parse_string,  # range flag: in_range, below_range, above_range
)


def parse_count(text: str) -> CellCount:
    """The ``FETCh?`` record of docs/scpi.md (ten fields) as a :class:`CellCount`."""
    values = parse_record(text, _COUNT_FIELDS)
    names = (
        "sample_id",
        "total_cells_per_ml",
        "viable_cells_per_ml",
        "viability_pct",
        "mean_diameter_um",
        "dilution",
        "operator",
        "counted_at_process_time_s",
        "instrument_serial",
        "range_flag",
    )
    return reply_model(CellCount, text, dict(zip(names, values, strict=True)))


class VisaCellCounter(VisaAdapter, CellCounter):
    """Counts a sample over SCPI: select it, start the count, poll, fetch the record.

    Create with ``await VisaCellCounter.connect("TCPIP0::127.0.0.1::5025::SOCKET")``.
    The count is overlapped on the instrument (``INITiate`` returns at once); the adapter
    polls ``STAT:OPER:COND?`` every ``poll_interval_s`` of process time and gives up
    after ``max_count_s``.
    """

    def __init__(
        self,
        session: VisaSession,
        identity: InstrumentIdentity,
        *,
        poll_interval_s: float = 2.0,
        max_count_s: float = 600.0,
    ) -> None:
        super().__init__(session, identity)
        require_range(self, "poll_interval_s", poll_interval_s, low=0.01, unit="s")
        require_range(self, "max_count_s", max_count_s, low=poll_interval_s, unit="s")
        self.poll_interval_s = poll_interval_s
        self.max_count_s = max_count_s

    async def count(
        self, sample: Sample, *, operator: str = "system", dilution: float = 1.0
    ) -> CellCount:
        commands = [
            f"SAMP:ID {quote(sample.sample_id, field='sample_id')}",
            f"SAMP:OPER {quote(operator, field='operator')}",
            f"SAMP:DIL {format_real(dilution, field='dilution')}",
            "INIT",
        ]
        for command in commands:
            await self.session.command(command)
        overdue = Overdue(self.max_count_s, self.poll_interval_s)
        while await self.session.query("STAT:OPER:COND?", parse_int) & MEASURING_BIT:
            if overdue.seen_busy():
                raise InstrumentError(
                    f"{self.session.where}: the count of {sample.sample_id!r} has not finished "
                    f"after {self.max_count_s:g} s; check the instrument (ABORt stops it)"
                )
            await anyio.sleep(self.poll_interval_s)
        result = await self.session.query("FETC?", parse_count)
        if result.sample_id != sample.sample_id:
            raise InstrumentError(
                f"{self.session.where}: FETCh? gave the result of sample {result.sample_id!r}, "
                f"not of {sample.sample_id!r} just counted; the count was not recorded"
            )
        return result
