"""VisaThawer: a dry thawer over VISA (docs/scpi.md, "Thawer").

A thaw is physical and happens once. The adapter asks the thawer what it knows of the
container (``THAW:RESult? "<id>"``) **before** sending ``THAW``: a thaw the thawer did
(or is doing) for it is followed and its result returned, not started again. So a
controller killed between a ``THAW`` and its reply, resumed, and calling
:meth:`VisaThawer.thaw` again for the same container (the command is in doubt in the
journal) gets the thaw that happened, and the container is not thawed twice. A
``THAW`` whose confirmation is lost raises
:class:`~cellauto.instruments.visa.errors.VisaCommandUnconfirmedError` (outcome unknown)
as for the other VISA adapters.
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio

from cellauto.errors import InstrumentError
from cellauto.instruments.base import InstrumentIdentity, require_range
from cellauto.instruments.thawer import Thawer, ThawResult
from cellauto.instruments.visa._adapter import VisaAdapter, reply_model
from cellauto.instruments.visa.errors import ScpiInstrumentError, ScpiReplyError
from cellauto.instruments.visa.overdue import Overdue
from cellauto.instruments.visa.scpi_format import quote
from cellauto.instruments.visa.scpi_reply import (
    parse_int,
    parse_mnemonic,
    parse_optional_real,
    parse_record,
    parse_string,
)
from cellauto.instruments.visa.session import VisaSession

__all__ = ["THAWING_BIT", "ThawRecord", "VisaThawer", "parse_thaw"]

#: STATus:OPERation:CONDition? bit 8 (value 256): a container is thawing.
THAWING_BIT = 1 << 8
_STATES = ("NONE", "THAWING", "DONE")


@dataclass(frozen=True)
class ThawRecord:
    """What the thawer knows of one container: ``none``, ``thawing`` or ``done``."""

    state: str
    container_id: str
    result: ThawResult | None


def parse_thaw(text: str) -> ThawRecord:
    """``THAW:RESult?``: ``<state>,"<id>",<duration_s>,<final_c>,<process_time_s>``."""
    state, container_id, duration, final, at_s = parse_record(
        text,
        (
            lambda t: parse_mnemonic(t, _STATES),
            parse_string,
            parse_optional_real,
            parse_optional_real,
            parse_optional_real,
        ),
    )
    if state != "DONE":
        return ThawRecord(state.lower(), container_id, None)
    if duration is None or final is None or at_s is None:
        raise ScpiReplyError("a DONE thaw without its duration, temperature and time", text)
    result = reply_model(
        ThawResult,
        text,
        {
            "container_id": container_id,
            "duration_s": duration,
            "final_temperature_c": final,
            "process_time_s": at_s,
        },
    )
    return ThawRecord("done", container_id, result)


class VisaThawer(VisaAdapter, Thawer):
    """A thawer over SCPI. Create with ``await VisaThawer.connect(resource)``. The thaw is
    overlapped on the instrument; the adapter polls ``STAT:OPER:COND?`` every
    ``poll_interval_s`` of process time and gives up after ``max_thaw_s``."""

    def __init__(
        self,
        session: VisaSession,
        identity: InstrumentIdentity,
        *,
        poll_interval_s: float = 10.0,
        max_thaw_s: float = 1800.0,
    ) -> None:
        super().__init__(session, identity)
        require_range(self, "poll_interval_s", poll_interval_s, low=0.01, unit="s")
        require_range(self, "max_thaw_s", max_thaw_s, low=poll_interval_s, unit="s")
        self.poll_interval_s = poll_interval_s
        self.max_thaw_s = max_thaw_s
        #: Thaws found done (or under way) on the thawer instead of being started here:
        #: the container ids, in order (a resumed controller's in-doubt thaws).
        self.found_done: list[str] = []

    async def record(self, container_id: str) -> ThawRecord:
        """What the thawer knows of ``container_id`` (``THAW:RESult?``)."""
        quoted = quote(container_id, field="container_id")
        return await self.session.query(f"THAW:RES? {quoted}", parse_thaw)

    async def thaw(self, container_id: str) -> ThawResult:
        known = await self.record(container_id)
        if known.state == "none":
            await self.session.command(f"THAW {quote(container_id, field='container_id')}")
        else:  # thawed (or thawing) before: the reply to that THAW was lost
            self.found_done.append(container_id)
        if known.result is not None:
            return known.result
        await self._wait(container_id)
        errors = await self.session.read_errors()
        if errors:
            raise ScpiInstrumentError(self.session.where, f"THAW {container_id!r}", errors)
        done = await self.record(container_id)
        if done.result is None:
            raise InstrumentError(
                f"{self.session.where}: the thaw of {container_id!r} ended without a result "
                f"({done.state})"
            )
        return done.result

    async def _wait(self, container_id: str) -> None:
        overdue = Overdue(self.max_thaw_s, self.poll_interval_s)
        while await self.session.query("STAT:OPER:COND?", parse_int) & THAWING_BIT:
            if overdue.seen_busy():
                raise InstrumentError(
                    f"{self.session.where}: {container_id!r} has been thawing for more than "
                    f"{self.max_thaw_s:g} s; check the thawer"
                )
            await anyio.sleep(self.poll_interval_s)
