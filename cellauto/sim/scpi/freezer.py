"""SCPI for a :class:`SimControlledRateFreezer` (docs/scpi.md, "Controlled-rate freezer").

A profile is defined segment by segment and loaded with ``PROFile:LOAD``; ``INITiate``
starts it with the named containers. The run itself advances in the simulated
freezer's model as process time passes (it needs no task of its own), so status and
temperature queries are answered throughout; ``*OPC?`` waits for the run's end.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
from pydantic import ValidationError

from cellauto.errors import InstrumentError
from cellauto.instruments.controlled_rate_freezer import (
    FreezeProfile,
    FreezeResult,
    FreezerReading,
    FreezerStatus,
    Hold,
    Ramp,
)
from cellauto.instruments.visa.scpi_format import (
    format_bool,
    format_optional_real,
    format_real,
    quote,
)
from cellauto.sim.freezer import SimControlledRateFreezer
from cellauto.sim.freezer_model import STEP_MIN
from cellauto.sim.scpi.device import ScpiDevice, validation_error
from cellauto.sim.scpi.errors import ScpiError
from cellauto.sim.scpi.program import Args, HeaderTable

__all__ = ["RUNNING", "FreezerScpi", "format_reading", "format_result", "format_status"]

#: STATus:OPERation bit 14 (program running): a profile is running.
RUNNING = 1 << 14
MAX_SEGMENTS = 50


def _segment(index: int | None) -> str:
    return "-1" if index is None else str(index)


def _ids(ids: list[str]) -> list[str]:
    return [str(len(ids)), *(quote(cid) for cid in ids)]


def format_status(status: FreezerStatus) -> str:
    """``<state>,<segment>,<elapsed_min>,<n>{,"<container id>"}``."""
    head = [status.state.upper(), _segment(status.segment_index), format_real(status.elapsed_min)]
    return ",".join(head + _ids(status.loaded_container_ids))


def format_reading(reading: FreezerReading) -> str:
    """``<chamber_c>,<sample_c>,<segment>,<process_time_s>``."""
    return ",".join(
        [
            format_real(reading.chamber_temperature_c),
            format_real(reading.sample_temperature_c),
            _segment(reading.segment_index),
            format_real(reading.process_time_s),
        ]
    )


def format_result(result: FreezeResult) -> str:
    """Ten fixed fields, the count of container ids and the ids, then the chamber load
    and the count of limit flags and theirs (five fields each)."""
    head = [
        result.end_state.upper(),
        quote(result.profile_name),
        format_real(result.final_sample_temperature_c),
        format_bool(result.phase_change_detected),
        format_optional_real(result.phase_change_process_time_s),
        format_optional_real(result.phase_change_temperature_c),
        format_real(result.max_latent_heat_rise_c),
        format_optional_real(result.cooling_rate_through_phase_change_c_per_min),
        str(result.power_interruptions),
        quote(result.message),
    ]
    flags = [str(len(result.limit_flags))]
    for flag in result.limit_flags:
        flags += [
            quote(flag.quantity),
            format_real(flag.value),
            format_real(flag.limit),
            quote(flag.unit),
            quote(flag.message),
        ]
    load = [format_optional_real(result.load_ml)]
    return ",".join(head + _ids(result.container_ids) + load + flags)


class FreezerScpi(ScpiDevice):
    """Serves a simulated controlled-rate freezer."""

    def __init__(self, freezer: SimControlledRateFreezer) -> None:
        self.freezer = freezer
        self._name = ""
        self._start_c = 4.0
        self._segments: list[Ramp | Hold] = []
        self._loaded = False
        super().__init__(freezer.identity)

    def register(self, table: HeaderTable) -> None:
        table.add("PROFile:CLEar", self._clear)
        table.add("PROFile:NAME", self._set_name)
        table.add("PROFile:NAME?", lambda a: self._query(a, quote(self._name)))
        table.add("PROFile:TEMPerature", self._set_start)
        table.add("PROFile:TEMPerature?", lambda a: self._query(a, format_real(self._start_c)))
        table.add("PROFile:RAMP", self._ramp)
        table.add("PROFile:HOLD", self._hold)
        table.add("PROFile:COUNt?", lambda a: self._query(a, str(len(self._segments))))
        table.add("PROFile:LOAD", self._load)
        table.add("INITiate", self._initiate)
        table.add("INITiate:IMMediate", self._initiate)
        table.add("PROGram:STATe?", self._state)
        table.add("MEASure:TEMPerature:CHAMber?", self._chamber)
        table.add("MEASure:TEMPerature:SAMPle?", self._sample)
        table.add("MEASure:TEMPerature:ALL?", self._all_temperatures)
        table.add("FETCh?", self._fetch)

    async def _running(self) -> bool:
        try:
            return (await self.freezer.status()).state == "running"
        except InstrumentError:
            return False

    async def operation_condition(self) -> int:
        return RUNNING if await self._running() else 0

    async def operations_pending(self) -> bool:
        return await self._running()

    async def wait_operations(self) -> None:
        # The simulated run advances only when looked at: nothing could set an event.
        while await self._running():  # noqa: ASYNC110
            await anyio.sleep(STEP_MIN * 60.0)

    def reset(self) -> None:
        self._name, self._start_c, self._segments = "", 4.0, []

    async def _query(self, args: Args, value: str) -> str:
        args.expect(0)
        return value

    async def _clear(self, args: Args) -> None:
        self.reset()
        args.expect(0)

    async def _set_name(self, args: Args) -> None:
        args.expect(1)
        self._name = args.string(0, "profile name")

    async def _set_start(self, args: Args) -> None:
        args.expect(1)
        self._start_c = self._chamber_limit(args, args.real(0, "start temperature °C"))

    async def _ramp(self, args: Args) -> None:
        args.expect(2)
        rate, end = args.real(0, "rate °C/min"), args.real(1, "end temperature °C")
        self._chamber_limit(args, end)
        self._append(args, lambda: Ramp(rate_c_per_min=rate, end_temperature_c=end))

    async def _hold(self, args: Args) -> None:
        args.expect(1)
        duration = args.real(0, "duration min")
        self._append(args, lambda: Hold(duration_min=duration))

    def _append(self, args: Args, build: Callable[[], Ramp | Hold]) -> None:
        if len(self._segments) >= MAX_SEGMENTS:
            raise ScpiError(-221, f"{args.header}: a profile holds at most {MAX_SEGMENTS} segments")
        try:
            self._segments.append(build())
        except ValidationError as exc:
            raise validation_error(exc) from None

    def _chamber_limit(self, args: Args, value_c: float) -> float:
        low, high = self.freezer.CHAMBER_MIN_C, self.freezer.CHAMBER_MAX_C
        if not low <= value_c <= high:
            raise ScpiError(
                -222, f"{args.header}: {value_c:g} °C outside the chamber's {low:g}..{high:g} °C"
            )
        return value_c

    async def _load(self, args: Args) -> None:
        args.expect(0)
        if await self._running():
            raise ScpiError(101, "a profile is running; wait for its end")
        try:
            profile = FreezeProfile(
                name=self._name, segments=self._segments, start_temperature_c=self._start_c
            )
        except ValidationError as exc:
            raise ScpiError(-221, str(validation_error(exc).detail)) from None
        await self.freezer.load_profile(profile)
        self._loaded = True

    async def _initiate(self, args: Args) -> None:
        if not args.params:
            raise ScpiError(-109, "INITiate takes the container ids of the run")
        ids = [args.string(i, "container id") for i in range(len(args.params))]
        if await self._running():
            raise ScpiError(101, "a profile is running; wait for its end")
        if not self._loaded:
            raise ScpiError(120, "load a profile with PROFile:LOAD first")
        missing = [cid for cid in ids if cid not in self.freezer.world.containers]
        if missing:
            raise ScpiError(121, ", ".join(repr(cid) for cid in missing))
        await self.freezer.start(ids)
        self.operation_started(RUNNING)

    async def _state(self, args: Args) -> str:
        args.expect(0)
        return format_status(await self.freezer.status())

    async def _reading(self) -> FreezerReading:
        readings = self.freezer.temperatures(1.0)
        try:
            return await anext(readings)
        finally:
            await readings.aclose()

    async def _chamber(self, args: Args) -> str:
        args.expect(0)
        return format_real((await self._reading()).chamber_temperature_c)

    async def _sample(self, args: Args) -> str:
        args.expect(0)
        return format_real((await self._reading()).sample_temperature_c)

    async def _all_temperatures(self, args: Args) -> str:
        args.expect(0)
        return format_reading(await self._reading())

    async def _fetch(self, args: Args) -> str:
        args.expect(0)
        try:
            return format_result(await self.freezer.result())
        except InstrumentError as exc:
            raise ScpiError(102, str(exc)) from None
