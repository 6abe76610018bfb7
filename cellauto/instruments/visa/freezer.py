"""VisaControlledRateFreezer: a controlled-rate freezer over VISA (docs/scpi.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio

from cellauto.instruments.base import require_range
from cellauto.instruments.controlled_rate_freezer import (
    ControlledRateFreezer,
    FreezeProfile,
    FreezeResult,
    FreezerReading,
    FreezerStatus,
    Ramp,
)
from cellauto.instruments.visa._adapter import VisaAdapter, reply_model
from cellauto.instruments.visa.errors import ScpiReplyError
from cellauto.instruments.visa.scpi_format import format_real, quote
from cellauto.instruments.visa.scpi_reply import (
    parse_bool,
    parse_counted,
    parse_int,
    parse_mnemonic,
    parse_optional_real,
    parse_real,
    parse_record,
    parse_string,
    split_fields,
)

__all__ = ["VisaControlledRateFreezer", "parse_reading", "parse_result", "parse_status"]

_STATES = ("IDLE", "LOADED", "RUNNING", "COMPLETE", "FAILED")
_END_STATES = ("COMPLETE", "FAILED")


def _state(text: str) -> str:
    return parse_mnemonic(text, _STATES).lower()


def _end_state(text: str) -> str:
    return parse_mnemonic(text, _END_STATES).lower()


def _segment(text: str) -> int | None:
    """A segment index; -1 means none (before a run)."""
    index = parse_int(text)
    if index < -1:
        raise ScpiReplyError("a segment index below -1", text)
    return None if index == -1 else index


def parse_status(text: str) -> FreezerStatus:
    """``PROGram:STATe?``: ``<state>,<segment>,<elapsed_min>,<n>{,"<container id>"}``."""
    (state, segment, elapsed), ids = parse_counted(
        text, (_state, _segment, parse_real), parse_string
    )
    fields = {
        "state": state,
        "segment_index": segment,
        "elapsed_min": elapsed,
        "loaded_container_ids": ids,
    }
    return reply_model(FreezerStatus, text, fields)


def parse_reading(text: str) -> FreezerReading:
    """``MEASure:TEMPerature:ALL?``: ``<chamber_c>,<sample_c>,<segment>,<process_time_s>``."""
    chamber, sample, segment, at_s = parse_record(
        text, (parse_real, parse_real, _segment, parse_real)
    )
    fields = {
        "chamber_temperature_c": chamber,
        "sample_temperature_c": sample,
        "segment_index": segment,
        "process_time_s": at_s,
    }
    return reply_model(FreezerReading, text, fields)


_RESULT_HEAD = (
    _end_state,
    parse_string,  # profile name
    parse_real,  # final sample temperature °C
    parse_bool,  # phase change detected
    parse_optional_real,  # phase change process time s
    parse_optional_real,  # phase change temperature °C
    parse_real,  # max latent heat rise °C
    parse_optional_real,  # cooling rate through the phase change °C/min
    parse_int,  # power interruptions
    parse_string,  # message
)
_RESULT_NAMES = (
    "end_state",
    "profile_name",
    "final_sample_temperature_c",
    "phase_change_detected",
    "phase_change_process_time_s",
    "phase_change_temperature_c",
    "max_latent_heat_rise_c",
    "cooling_rate_through_phase_change_c_per_min",
    "power_interruptions",
    "message",
)


_FLAG_FIELDS = (parse_string, parse_real, parse_real, parse_string, parse_string)
_FLAG_NAMES = ("quantity", "value", "limit", "unit", "message")


def parse_result(text: str) -> FreezeResult:
    """``FETCh?``: ten fixed fields, ``<n>`` and n container ids, then the chamber load,
    ``<m>`` and m limit flags of five fields (docs/scpi.md); a freezer that states no
    load ends after the container ids (no load, no flags)."""
    fields_in = split_fields(text)
    n_ids = parse_int(fields_in[len(_RESULT_HEAD)]) if len(fields_in) > len(_RESULT_HEAD) else 0
    end_ids = len(_RESULT_HEAD) + 1 + max(n_ids, 0)
    head, ids = parse_counted(",".join(fields_in[:end_ids]), _RESULT_HEAD, parse_string)
    fields: dict[str, object] = dict(zip(_RESULT_NAMES, head, strict=True))
    rest = fields_in[end_ids:]
    if rest:
        size = len(_FLAG_FIELDS)
        n_flags = parse_int(rest[1]) if len(rest) > 1 else -1
        if n_flags < 0 or len(rest) != 2 + size * n_flags:
            raise ScpiReplyError("the chamber load and limit flags after the containers", text)
        fields["load_ml"] = parse_optional_real(rest[0])
        fields["limit_flags"] = [
            dict(zip(_FLAG_NAMES, parse_record(",".join(group), _FLAG_FIELDS), strict=True))
            for group in (rest[2 + i : 2 + i + size] for i in range(0, size * n_flags, size))
        ]
    return reply_model(FreezeResult, text, {**fields, "container_ids": ids})


class VisaControlledRateFreezer(VisaAdapter, ControlledRateFreezer):
    """A controlled-rate freezer over SCPI.

    Create with ``await VisaControlledRateFreezer.connect("TCPIP0::127.0.0.1::5026::SOCKET")``.
    A profile is defined segment by segment (``PROF:CLE``, ``PROF:RAMP``, ``PROF:HOLD``)
    and loaded with ``PROF:LOAD``; chamber temperatures outside ``CHAMBER_MIN_C`` ..
    ``CHAMBER_MAX_C`` are refused here, before anything is sent.
    """

    async def load_profile(self, profile: FreezeProfile) -> FreezerStatus:
        temperatures = [("start_temperature_c", profile.start_temperature_c)] + [
            (f"segments[{index}].end_temperature_c", segment.end_temperature_c)
            for index, segment in enumerate(profile.segments)
            if isinstance(segment, Ramp)
        ]
        for name, value in temperatures:
            low, high = self.CHAMBER_MIN_C, self.CHAMBER_MAX_C
            require_range(self, name, value, low=low, high=high, unit="°C")
        commands = [
            "PROF:CLE",
            f"PROF:NAME {quote(profile.name, field='profile name')}",
            f"PROF:TEMP {format_real(profile.start_temperature_c)}",
        ]
        for segment in profile.segments:
            if isinstance(segment, Ramp):
                rate, end = (
                    format_real(segment.rate_c_per_min),
                    format_real(segment.end_temperature_c),
                )
                commands.append(f"PROF:RAMP {rate},{end}")
            else:
                commands.append(f"PROF:HOLD {format_real(segment.duration_min)}")
        commands.append("PROF:LOAD")
        for command in commands:
            await self.session.command(command)
        return await self.status()

    async def start(self, container_ids: list[str]) -> FreezerStatus:
        ids = ",".join(quote(cid, field="container id") for cid in container_ids)
        await self.session.command(f"INIT {ids}" if ids else "INIT")
        return await self.status()

    async def status(self) -> FreezerStatus:
        return await self.session.query("PROG:STAT?", parse_status)

    async def temperatures(self, interval_s: float) -> AsyncIterator[FreezerReading]:
        require_range(self, "interval_s", interval_s, low=1.0, unit="s")
        while True:
            yield await self.session.query("MEAS:TEMP:ALL?", parse_reading)
            if (await self.status()).state in ("complete", "failed"):
                return
            await anyio.sleep(interval_s)

    async def result(self) -> FreezeResult:
        return await self.session.query("FETC?", parse_result)
