"""The result fields issue 14 adds travel over the wire as they are in process (seam S2):
the counter's dilution and range over SCPI, the freezer's load and limit flags over
SCPI, the cytometer's flags and gates and the processor's limit flags over OPC UA."""

from __future__ import annotations

from typing import Any

import pytest

from cellauto.instruments.cell_counter import CellCount
from cellauto.instruments.controlled_rate_freezer import FreezeResult
from cellauto.instruments.flow_cytometer import Immunophenotype
from cellauto.instruments.limits import LimitFlag
from cellauto.instruments.opcua import OpcUaCellProcessor, OpcUaFlowCytometer
from cellauto.instruments.visa import VisaCellCounter
from cellauto.instruments.visa.counter import parse_count
from cellauto.instruments.visa.errors import ScpiReplyError
from cellauto.instruments.visa.freezer import parse_result
from cellauto.sim import counter as sim_counter
from cellauto.sim import cytometer as sim_cytometer
from cellauto.sim import processor as sim_processor
from cellauto.sim.opcua import serve_cytometer, serve_processor
from cellauto.sim.scpi import CounterScpi, serve_scpi
from cellauto.sim.scpi.counter import format_count
from cellauto.sim.scpi.freezer import format_result
from tests.wire.opcua_more_support import cytometer_script, make_cytometer, side_by_side
from tests.wire.scpi_support import make_counter
from tests.wire.test_opcua_support import assert_same_results, make_processor, processor_script

pytestmark = pytest.mark.anyio

WASH_FLAG = LimitFlag(
    quantity="input cells",
    value=4.1e9,
    limit=4e9,
    unit="cells",
    message="membrane pressure high: input above capacity, recovery reduced",
)


def _adding(model: type[Any], **extra: Any) -> Any:
    """``model`` built with ``extra`` fields too (what tracks A-D's models will set)."""
    return lambda **given: model(**{**extra, **given})


async def test_a_diluted_count_out_of_range_reads_back_over_scpi(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a linear range the sample is above (the model flags it; the record carries it)
    monkeypatch.setattr(sim_counter.SimCellCounter, "LINEAR_RANGE_CELLS_PER_ML", (1.0, 10.0))
    local, local_sample = make_counter(seed=11)
    want = await local.count(local_sample, operator="alice", dilution=2.0)
    remote, sample = make_counter(seed=11)
    async with serve_scpi(CounterScpi(remote)) as server:
        counter = await VisaCellCounter.connect(server.resource_name, timeout_s=2.0)
        async with counter:
            got = await counter.count(sample, operator="alice", dilution=2.0)
    assert (got.dilution, got.range_flag) == (2.0, "above_range")
    assert got.model_dump(exclude={"counted_at_process_time_s"}) == want.model_dump(
        exclude={"counted_at_process_time_s"}
    )


def test_a_count_record_round_trips_and_a_short_one_is_refused() -> None:
    count = CellCount(
        sample_id="S-1",
        total_cells_per_ml=1e6,
        viable_cells_per_ml=9e5,
        viability_pct=90.0,
        mean_diameter_um=9.5,
        operator="bob",
        counted_at_process_time_s=1.0,
        instrument_serial="CC-0001",
    )
    record = format_count(count)
    assert record.endswith(',"in_range"') and parse_count(record) == count
    with pytest.raises(ScpiReplyError):
        parse_count(record.rsplit(",", 1)[0])  # nine fields: the range is missing
    with pytest.raises(ScpiReplyError):
        parse_count(record.replace('"in_range"', '"out_of_range"'))


def test_the_freezer_result_carries_its_load_and_limit_flags_over_scpi() -> None:
    result = FreezeResult(
        end_state="complete",
        profile_name="standard",
        container_ids=["BAG-1", "BAG, 2"],
        final_sample_temperature_c=-90.0,
        phase_change_detected=True,
        phase_change_process_time_s=1000.0,
        phase_change_temperature_c=-7.5,
        max_latent_heat_rise_c=1.2,
        cooling_rate_through_phase_change_c_per_min=-0.9,
        power_interruptions=0,
        message="complete",
        load_ml=1200.0,
        limit_flags=[
            LimitFlag(quantity="chamber load", value=1200, limit=1000, unit="mL", message="slow")
        ],
    )
    assert parse_result(format_result(result)) == result
    bare = result.model_copy(update={"load_ml": None, "limit_flags": []})
    assert parse_result(format_result(bare)) == bare
    older = format_result(bare).rsplit(",", 2)[0]  # a freezer that states no load
    assert parse_result(older) == bare
    with pytest.raises(ScpiReplyError):
        parse_result(format_result(result).rsplit(",", 1)[0])  # a flag cut short


async def test_cytometer_flags_gates_and_cd16_read_back_over_opcua(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        sim_cytometer,
        "Immunophenotype",
        _adding(
            Immunophenotype,
            cd16_pct=87.5,
            flags=["CD4/CD8 not reported: 40 CD3+ events (< 100)"],
            gate_events={"CD3+": 40, "CD3-CD56+": 45000},
        ),
    )
    (local, sample), (remote, _) = make_cytometer(seed=3), make_cytometer(seed=3)
    async with serve_cytometer(remote) as server:
        adapter = await OpcUaFlowCytometer.connect(server.url, clock=remote.world.clock)
        async with adapter:
            got, want = await side_by_side(adapter, local, cytometer_script, sample)
    assert_same_results(got, want)
    assert got[0].cd16_pct == 87.5 and got[0].gate_events == {"CD3+": 40, "CD3-CD56+": 45000}
    assert got[0].flags == ["CD4/CD8 not reported: 40 CD3+ events (< 100)"]


async def test_processor_limit_flags_read_back_over_lads(monkeypatch: pytest.MonkeyPatch) -> None:

    real = sim_processor.process

    def flagged(*args: Any) -> Any:  # every program flagged, as an over-capacity wash is
        done = real(*args)
        done.limit_flags = [WASH_FLAG]
        return done

    monkeypatch.setattr(sim_processor, "process", flagged)
    local, remote = make_processor(seed=5), make_processor(seed=5)
    async with serve_processor(remote) as server:
        adapter = await OpcUaCellProcessor.connect(server.url, clock=remote.world.clock)
        async with adapter:
            got, want = await side_by_side(adapter, local, processor_script)
    assert_same_results(got, want)
    assert got[0].limit_flags == [WASH_FLAG]
