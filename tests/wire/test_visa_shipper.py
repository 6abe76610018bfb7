"""VisaDryShipper over TCP against the simulated dry shipper: the logger's readings as
in process, loads and unloads overlapped, refusals named."""

from __future__ import annotations

from datetime import timedelta

import anyio
import pytest

from cellauto.clock import Clock
from cellauto.instruments.dry_shipper import DryShipper
from cellauto.instruments.visa import ScpiInstrumentError, VisaDryShipper, connect_visa
from cellauto.instruments.visa.errors import ScpiReplyError
from cellauto.instruments.visa.shipper import parse_readings
from cellauto.sim.dry_shipper import SimDryShipper
from cellauto.sim.faults import ShipperWarming
from cellauto.sim.scpi import scpi_device, serve_scpi
from cellauto.sim.world import SimWorld
from tests.wire.scpi_support import ORIGIN

pytestmark = pytest.mark.anyio
DAY = 24 * 3600.0


def make_shipper(seed: int = 5) -> SimDryShipper:
    return SimDryShipper(SimWorld(Clock(ORIGIN), seed=seed))


async def test_readings_over_visa_are_the_in_process_readings_page_by_page() -> None:
    local = make_shipper()
    local.inject(ShipperWarming(at_h=40.0, rate_c_per_h=30.0, duration_h=2.0))
    remote = make_shipper()
    remote.inject(ShipperWarming(at_h=40.0, rate_c_per_h=30.0, duration_h=2.0))
    async with serve_scpi(scpi_device(remote)) as server:
        shipper = await connect_visa(DryShipper, server.resource_name, timeout_s=2.0)
        assert isinstance(shipper, VisaDryShipper)
        async with shipper:
            assert shipper.identity.adapter == "visa"
            assert (shipper.identity.serial, shipper.logger_serial) == ("DS-0001", "LOG-DS-0001")
            await anyio.sleep(3 * DAY)
            got = await shipper.logger_readings(ORIGIN - timedelta(seconds=1))
            status = await shipper.status()
    await anyio.sleep(3 * DAY)  # the local one, looked at as late
    want = await local.logger_readings(ORIGIN - timedelta(seconds=1))
    assert len(got) > 3 * 24 * 12 > 500  # more than one page
    assert got[: len(want)] == want[: len(got)]
    assert status.ln2_charge_pct == pytest.approx(70.0, abs=0.1) and not status.lid_open
    assert status.alarm is None and status.temperature_c < -185


async def test_load_and_unload_are_overlapped_and_refusals_name_the_error() -> None:
    sim = make_shipper()
    async with (
        serve_scpi(scpi_device(sim)) as server,
        await VisaDryShipper.connect(server.resource_name, poll_interval_s=10.0) as shipper,
    ):
        started = anyio.current_time()
        assert await shipper.load("final product 1") == ["final product 1"]
        assert 60 <= anyio.current_time() - started < 75  # the lid open for a minute
        with pytest.raises(ScpiInstrumentError, match="already in the shipper") as twice:
            await shipper.load("final product 1")
        assert twice.value.errors[0][0] == -221
        with pytest.raises(ScpiInstrumentError, match="'bag 9' is not in the shipper") as gone:
            await shipper.unload("bag 9")
        assert gone.value.errors[0][0] == 121
        assert await shipper.unload("final product 1") == []
        assert await shipper.contents() == [] == await sim.contents()


def test_a_garbled_logger_reply_is_refused() -> None:
    with pytest.raises(ScpiReplyError, match="2 readings announced, 3 fields follow"):
        parse_readings("2,1.0,-190.0,2.0")
    assert parse_readings("0") == []


async def test_a_charge_over_visa_waits_for_the_pour_and_returns_the_status() -> None:
    sim = SimDryShipper(SimWorld(Clock(ORIGIN), seed=5))
    async with (
        serve_scpi(scpi_device(sim)) as server,
        await VisaDryShipper.connect(server.resource_name, poll_interval_s=60.0) as shipper,
    ):
        await anyio.sleep(12 * 24 * 3600.0)  # past its 10-day hold time: warm
        assert (await shipper.status()).temperature_c > -150
        started = anyio.current_time()
        status = await shipper.charge()  # 20 min: longer than a load's handling limit allows
        assert 20 * 60 <= anyio.current_time() - started < 22 * 60
        assert status.hold_time_remaining_h == pytest.approx(240.0, abs=0.1)
