"""The OPC UA adapters behave like the in-process instruments, with the same numbers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import anyio
import pytest

from cellauto.clock import Clock
from cellauto.errors import InstrumentError, OutOfRangeError
from cellauto.instruments.bioreactor import Bioreactor, Setpoints
from cellauto.instruments.cell_processor import CellProcessor, ProgramInputs
from cellauto.instruments.opcua import OpcUaBioreactor, OpcUaCellProcessor
from cellauto.sim.bioreactor import SimBioreactor
from cellauto.sim.faults import CommandFailure
from cellauto.sim.opcua import operation_log, serve_bioreactor, serve_processor
from tests.wire.test_opcua_support import (
    assert_same_results,
    bioreactor_script,
    leftover_tasks,
    make_bioreactor,
    make_processor,
    processor_script,
)

pytestmark = pytest.mark.anyio


async def _side_by_side(local: Any, remote: Any, script: Any, *args: Any) -> tuple[Any, Any]:
    """Run ``script`` on both instruments from the same process time, concurrently."""
    results: dict[str, Any] = {}

    async def run(key: str, instrument: Any) -> None:
        results[key] = await script(instrument, *args)

    async with anyio.create_task_group() as group:
        group.start_soon(run, "local", local)
        group.start_soon(run, "remote", remote)
    return results["remote"], results["local"]


async def test_the_bioreactor_over_opcua_gives_the_in_process_numbers() -> None:
    local, remote = make_bioreactor(seed=11), make_bioreactor(seed=11)
    async with serve_bioreactor(remote, sample_interval_s=None) as server:
        adapter = await OpcUaBioreactor.connect(server.url, clock=remote.world.clock, max_age_s=0.0)
        async with adapter:
            assert isinstance(adapter, Bioreactor)
            ident = adapter.identity
            assert (ident.vendor, ident.model, ident.serial) == (
                "cellauto-sim",
                "SimWave 1L",
                "BR-0001",
            )
            assert (ident.firmware, ident.adapter) == ("sim-1.0", "opcua")
            started = anyio.current_time()
            got, want = await _side_by_side(adapter, local, bioreactor_script, anyio.sleep)
            # the commands took their process time: 1 + 600 + 120 + 120 + 300 + 60 + 1800 s
            assert anyio.current_time() - started == pytest.approx(4 * 86_400 + 3001, abs=1.0)
            assert await adapter.read_current_value("TemperatureController") == pytest.approx(
                37.0, abs=0.5
            )
    assert_same_results(got, want)
    assert leftover_tasks() == []
    assert remote.world.containers["HARVEST-1"].viable_cells == pytest.approx(
        local.world.containers["HARVEST-1"].viable_cells, rel=1e-9
    )


async def test_the_processor_over_opcua_runs_a_program_to_the_in_process_result() -> None:
    local, remote = make_processor(seed=5), make_processor(seed=5)
    async with serve_processor(remote) as server:
        adapter = await OpcUaCellProcessor.connect(server.url, clock=remote.world.clock)
        async with adapter:
            assert isinstance(adapter, CellProcessor)
            assert adapter.identity.serial == "CP-0001"
            assert await adapter.programs() == await local.programs()
            assert await adapter.active_program() is None
            got, want = await _side_by_side(adapter, local, processor_script)
    assert_same_results(got, want)
    assert got[0].success and got[0].output_container_id == "ENR-1"
    assert leftover_tasks() == []


async def test_refusals_are_the_in_process_errors_with_the_same_messages() -> None:
    local, remote = make_bioreactor(), make_bioreactor()
    async with serve_bioreactor(remote, sample_interval_s=None) as server:
        adapter = await OpcUaBioreactor.connect(server.url, clock=remote.world.clock)
        async with adapter:
            for instrument in (local, adapter):
                with pytest.raises(OutOfRangeError) as caught:  # checked before sending
                    await instrument.set_setpoints(Setpoints(temperature_c=45.0))
                assert "temperature_c 45 °C is above the limit 40 °C" in str(caught.value)
            assert operation_log(remote, remote.world.clock, "").records == {}

            messages = []
            for instrument in (local, adapter):
                with pytest.raises(InstrumentError) as missing:
                    await instrument.seed("NO-SUCH-BAG", 10.0, 100.0)
                with pytest.raises(OutOfRangeError) as too_much:
                    await instrument.seed("APH-1", 500.0, 100.0)
                messages.append((str(missing.value), str(too_much.value)))
            assert messages[0] == messages[1]
            assert "no container 'NO-SUCH-BAG' on the line" in messages[0][0]

            remote.inject(CommandFailure(message="pump jammed"))
            with pytest.raises(
                InstrumentError, match="Bioreactor BR-0001: feed failed: pump jammed"
            ):
                await adapter.feed(10.0)


async def test_processor_refusals_name_what_was_wrong() -> None:
    sim = make_processor()
    async with serve_processor(sim) as server:
        adapter = await OpcUaCellProcessor.connect(server.url, clock=sim.world.clock)
        async with adapter:
            inputs = ProgramInputs(source_container_id="APH-1", output_container_id="OUT")
            with pytest.raises(InstrumentError, match="unknown program 'NOPE'; known: CD4CD8"):
                await adapter.start_program("NOPE", inputs, "t-1")
            too_big = inputs.model_copy(update={"parameters": {"output_volume_ml": 999.0}})
            with pytest.raises(OutOfRangeError, match="output_volume_ml 999 mL is above"):
                await adapter.start_program("CD3_ENRICHMENT", too_big, "t-2")
            run_id = await adapter.start_program("CD3_ENRICHMENT", inputs, "t-3")
            with pytest.raises(InstrumentError, match="still running"):
                await adapter.program_result(run_id)
            aborted = await adapter.abort_program(run_id)
            assert aborted.state == "aborted"
            assert (await adapter.abort_program(run_id)).state == "aborted"  # idempotent
            with pytest.raises(InstrumentError, match="no program run 'RUN-X'"):
                await adapter.program_status("RUN-X")


def _count_reads(sim: SimBioreactor) -> list[float]:
    """The process time of each sample the simulated bioreactor takes, from now on."""
    reads: list[float] = []
    plain_read = sim.read_process_values

    async def counted() -> Any:
        values = await plain_read()
        reads.append(values.process_time_s)
        return values

    sim.read_process_values = counted  # type: ignore[method-assign]
    return reads


async def test_readings_come_from_the_subscription_while_fresh() -> None:
    sim = make_bioreactor()
    reads = _count_reads(sim)
    async with serve_bioreactor(sim, sample_interval_s=600.0) as server:
        adapter = await OpcUaBioreactor.connect(server.url, clock=sim.world.clock, max_age_s=600.0)
        async with adapter:
            await anyio.sleep(0.1)
            assert len(reads) == 1  # the server's own sample at start
            first = await adapter.read_process_values()
            assert first.process_time_s == reads[0] and len(reads) == 1  # from the cache
            await anyio.sleep(700.0)  # the server sampled again at 600 s
            second = await adapter.read_process_values()
            assert second.process_time_s == reads[1] and len(reads) == 2
            await adapter.set_setpoints(Setpoints(temperature_c=37.0))
            third = await adapter.read_process_values()  # measured after the command
            assert len(reads) == 3 and third.process_time_s == reads[2]
            assert third.process_time_s >= sim.world.clock.now_s() - 0.01
            stream = adapter.process_values(interval_s=300.0)
            fourth = await anext(stream)
            assert fourth == third
            await stream.aclose()


async def test_a_snapshot_dated_after_our_now_is_not_taken_for_fresh() -> None:
    """A controller whose clock is behind the line's (no shared epoch) once took a
    days-old snapshot, dated in its future, for fresh for ever."""
    sim = make_bioreactor()
    reads = _count_reads(sim)
    behind = Clock(sim.world.clock.now() - timedelta(days=2))
    async with serve_bioreactor(sim, sample_interval_s=600.0) as server:
        adapter = await OpcUaBioreactor.connect(server.url, clock=behind, max_age_s=600.0)
        async with adapter:
            await anyio.sleep(0.1)
            assert len(reads) == 1  # the server's own sample at start, in our future
            await adapter.read_process_values()
            assert len(reads) == 2  # not taken from the cache: sampled now
