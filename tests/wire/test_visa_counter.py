"""VisaCellCounter over TCP against the simulated counter: same numbers as in-process."""

from __future__ import annotations

import anyio
import pytest

from cellauto.errors import EquipmentError, InstrumentError
from cellauto.instruments.barcode_scanner import BarcodeScanner
from cellauto.instruments.cell_counter import CellCounter
from cellauto.instruments.materials import Sample
from cellauto.instruments.visa import ScpiInstrumentError, VisaCellCounter, connect_visa
from cellauto.sim.faults import CommandFailure
from cellauto.sim.scanner import SimBarcodeScanner
from cellauto.sim.scpi import CounterScpi, scpi_device, serve_scpi
from tests.wire.scpi_support import make_counter

pytestmark = pytest.mark.anyio


async def test_count_over_visa_equals_the_in_process_count_for_the_same_seed() -> None:
    local, local_sample = make_counter(seed=11)
    expected = await local.count(local_sample, operator="alice")

    remote, sample = make_counter(seed=11)
    async with serve_scpi(CounterScpi(remote)) as server:
        counter = await VisaCellCounter.connect(server.resource_name, timeout_s=2.0)
        async with counter:
            assert isinstance(counter, CellCounter)
            assert counter.identity.adapter == "visa"
            assert (counter.identity.model, counter.identity.serial) == ("SimCount BLU", "CC-0001")
            started = anyio.current_time()
            count = await counter.count(sample, operator="alice")
            assert 90 <= anyio.current_time() - started < 100

    got, want = count.model_dump(), expected.model_dump()
    # process time differs by the real round trips (virtual time follows real time
    # while a request is in flight); every measured value is bit-identical
    assert got.pop("counted_at_process_time_s") == pytest.approx(
        want.pop("counted_at_process_time_s"), abs=2.0
    )
    assert got == want


async def test_an_unknown_sample_is_refused_naming_instrument_command_and_error() -> None:
    counter_sim, _ = make_counter()
    async with (
        serve_scpi(CounterScpi(counter_sim)) as server,
        await VisaCellCounter.connect(server.resource_name) as counter,
    ):
        ghost = Sample(
            sample_id="GHOST-1", source_container_id="BAG-1", volume_ml=1.0,
            drawn_at_process_time_s=0.0,
        )  # fmt: skip
        with pytest.raises(ScpiInstrumentError) as caught:
            await counter.count(ghost)
    message = str(caught.value)
    assert "CellCounter CC-0001 at TCPIP0::127.0.0.1::" in message
    assert "'SAMP:ID \"GHOST-1\"'" in message
    assert '110,"Sample not found' in message
    assert caught.value.errors[0][0] == 110


async def test_a_count_that_fails_on_the_instrument_raises_its_error() -> None:
    counter_sim, sample = make_counter()
    counter_sim.inject(CommandFailure(message="lamp failure"))
    async with (
        serve_scpi(CounterScpi(counter_sim)) as server,
        await VisaCellCounter.connect(server.resource_name) as counter,
    ):
        with pytest.raises(ScpiInstrumentError, match="lamp failure") as caught:
            await counter.count(sample)
    assert [code for code, _ in caught.value.errors] == [112, 102]
    assert "'FETC?'" in str(caught.value)


async def test_options_are_checked() -> None:
    counter_sim, _ = make_counter()
    async with serve_scpi(CounterScpi(counter_sim)) as server:
        with pytest.raises(InstrumentError, match="poll_interval_s"):
            await VisaCellCounter.connect(server.resource_name, poll_interval_s=0.0)


async def test_adapters_and_servers_are_found_by_interface() -> None:
    counter_sim, _ = make_counter()
    async with serve_scpi(scpi_device(counter_sim)) as server:
        counter = await connect_visa(CellCounter, server.resource_name, poll_interval_s=5.0)
        async with counter:
            assert isinstance(counter, VisaCellCounter) and counter.poll_interval_s == 5.0
        with pytest.raises(EquipmentError, match="no VISA adapter for BarcodeScanner"):
            await connect_visa(BarcodeScanner, server.resource_name)
    with pytest.raises(EquipmentError, match="SimBarcodeScanner has no SCPI server"):
        scpi_device(SimBarcodeScanner(counter_sim.world))
