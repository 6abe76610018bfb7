"""VisaControlledRateFreezer over TCP: a complete freeze, readings, refusals."""

from __future__ import annotations

import pytest

from cellauto.errors import OutOfRangeError
from cellauto.instruments.controlled_rate_freezer import (
    FreezeProfile,
    Hold,
    Ramp,
    standard_freeze_profile,
)
from cellauto.instruments.visa import (
    ScpiInstrumentError,
    ScpiOutOfRangeError,
    VisaControlledRateFreezer,
)
from cellauto.sim.freezer import SimControlledRateFreezer
from cellauto.sim.scpi import FreezerScpi, serve_scpi
from tests.wire.scpi_support import make_freezer

pytestmark = pytest.mark.anyio

SHORT = FreezeProfile(
    name="short -1 °C/min",
    segments=[Ramp(rate_c_per_min=-1.0, end_temperature_c=-20.0), Hold(duration_min=5.0)],
)


class RecordingFreezerScpi(FreezerScpi):
    """Keeps every message it executes."""

    def __init__(self, freezer: SimControlledRateFreezer) -> None:
        super().__init__(freezer)
        self.messages: list[bytes] = []

    async def execute(self, raw: bytes) -> str | None:
        self.messages.append(raw)
        return await super().execute(raw)


async def test_a_complete_freeze_over_visa_equals_the_in_process_run() -> None:
    profile = standard_freeze_profile()
    local = make_freezer(seed=5)
    expected = await local.run_profile(profile, ["BAG-1", "BAG-2"])

    remote = make_freezer(seed=5)
    async with (
        serve_scpi(FreezerScpi(remote)) as server,
        await VisaControlledRateFreezer.connect(server.resource_name) as freezer,
    ):
        assert freezer.identity.model == "SimFreeze CRF"
        result = await freezer.run_profile(profile, ["BAG-1", "BAG-2"])
        status = await freezer.status()

    assert result.phase_change_detected and result.end_state == "complete"
    got, want = result.model_dump(), expected.model_dump()
    assert got.pop("phase_change_process_time_s") == pytest.approx(
        want.pop("phase_change_process_time_s"), abs=2.0
    )
    assert got == want  # profile name with "°", message, every temperature: identical
    assert status.state == "complete" and status.loaded_container_ids == ["BAG-1", "BAG-2"]
    assert remote.frozen.keys() == local.frozen.keys() == {"BAG-1", "BAG-2"}


async def test_temperatures_stream_until_the_run_ends() -> None:
    async with (
        serve_scpi(FreezerScpi(make_freezer())) as server,
        await VisaControlledRateFreezer.connect(server.resource_name) as freezer,
    ):
        loaded = await freezer.load_profile(SHORT)
        assert (loaded.state, loaded.segment_index) == ("loaded", None)
        started = await freezer.start(["BAG-1"])
        assert (started.state, started.loaded_container_ids) == ("running", ["BAG-1"])
        readings = [reading async for reading in freezer.temperatures(60.0)]
        result = await freezer.result()
    assert result.end_state == "complete"
    assert 20 <= len(readings) <= 40
    assert readings[0].chamber_temperature_c > readings[-1].chamber_temperature_c
    assert readings[-1].segment_index == 1
    times = [reading.process_time_s for reading in readings]
    assert times == sorted(times)


async def test_chamber_limits_are_refused_before_anything_is_sent() -> None:
    device = RecordingFreezerScpi(make_freezer())
    too_cold = FreezeProfile(
        name="too cold", segments=[Ramp(rate_c_per_min=-10.0, end_temperature_c=-200.0)]
    )
    async with (
        serve_scpi(device) as server,
        await VisaControlledRateFreezer.connect(server.resource_name) as freezer,
    ):
        sent = len(device.messages)
        with pytest.raises(OutOfRangeError, match=r"segments\[0\].end_temperature_c -200"):
            await freezer.load_profile(too_cold)
        assert len(device.messages) == sent


async def test_instrument_errors_name_the_instrument_the_command_and_the_code() -> None:
    async with (
        serve_scpi(FreezerScpi(make_freezer())) as server,
        await VisaControlledRateFreezer.connect(server.resource_name) as freezer,
    ):
        with pytest.raises(ScpiOutOfRangeError) as out_of_range:
            await freezer.session.command("PROF:RAMP -1,-500")
        with pytest.raises(ScpiInstrumentError) as undefined:
            await freezer.session.command("PROF:RAMPS -1,-5")
        with pytest.raises(ScpiInstrumentError, match='120,"No profile loaded'):
            await freezer.start(["BAG-1"])
        with pytest.raises(ScpiInstrumentError, match='102,"No result available'):
            await freezer.result()
        assert await freezer.session.read_errors() == []
    assert isinstance(out_of_range.value, OutOfRangeError)
    message = str(out_of_range.value)
    assert message.startswith("ControlledRateFreezer CRF-0001 at TCPIP0::127.0.0.1::")
    assert "'PROF:RAMP -1,-500' was refused: SCPI error -222" in message
    assert "-500 °C outside the chamber's -180..40 °C" in message
    assert undefined.value.errors == [(-113, "Undefined header; PROF:RAMPS")]
