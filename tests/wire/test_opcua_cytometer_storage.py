"""The cytometer and the cryostorage over OPC UA: the in-process numbers and refusals."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

from cellauto.errors import InstrumentError
from cellauto.instruments.cryo_storage import CryoStorage
from cellauto.instruments.flow_cytometer import FlowCytometer
from cellauto.instruments.materials import Sample
from cellauto.instruments.opcua import OpcUaCryoStorage, OpcUaFlowCytometer
from cellauto.sim.faults import CommandFailure, LN2LevelDrop
from cellauto.sim.opcua import serve_cytometer, serve_storage
from tests.wire.opcua_more_support import (
    at,
    cytometer_script,
    make_cytometer,
    make_storage,
    side_by_side,
    storage_script,
)
from tests.wire.test_opcua_support import assert_same_results, leftover_tasks

pytestmark = pytest.mark.anyio


async def test_the_cytometer_over_opcua_gives_the_in_process_immunophenotypes() -> None:
    (local, sample), (remote, _) = make_cytometer(seed=3), make_cytometer(seed=3)
    async with serve_cytometer(remote) as server:
        adapter = await OpcUaFlowCytometer.connect(server.url, clock=remote.world.clock)
        async with adapter:
            assert isinstance(adapter, FlowCytometer)
            ident = adapter.identity
            assert (ident.model, ident.serial, ident.adapter) == ("SimFlow 6C", "FC-0001", "opcua")
            assert await adapter.panels() == list(remote.panels)
            started = remote.world.clock.now_s()
            got, want = await side_by_side(adapter, local, cytometer_script, sample)
            # each acquisition took its 20 min of process time
            assert remote.world.clock.now_s() - started == pytest.approx(2400.0, abs=1.0)
    assert_same_results(got, want)
    assert got[0].operator == "alice" and got[1].panel == "T-cell purity"
    assert got[0].events_acquired == want[0].events_acquired == 50_000  # counts: exact
    assert leftover_tasks() == []


async def test_the_storage_over_opcua_gives_the_in_process_conditions_and_inventory() -> None:
    local, remote = make_storage(seed=4), make_storage(seed=4)
    async with serve_storage(remote) as server:
        adapter = await OpcUaCryoStorage.connect(server.url, clock=remote.world.clock)
        async with adapter:
            assert isinstance(adapter, CryoStorage)
            assert (adapter.identity.serial, adapter.identity.adapter) == ("LN2-0001", "opcua")
            got, want = await side_by_side(adapter, local, storage_script)
    assert_same_results(got, want)
    # the same noise draws in the same order: the readings agree far inside the tolerance
    assert got[0].temperature_c == pytest.approx(want[0].temperature_c, abs=1e-9)
    assert [item.container_id for item in got[3:5]] == ["bag 1", "bag 2"]
    assert remote.world.containers["bag 1"].history[-2:] == [
        "stored in CryoStorage LN2-0001 at rack A box 1 slot 1",
        "retrieved from CryoStorage LN2-0001 at rack A box 1 slot 1",
    ]
    assert leftover_tasks() == []


Act = Callable[[Any], Awaitable[object]]


async def _refusals(
    local: Any, adapter: Any, acts: list[tuple[str, Act]]
) -> list[tuple[str, type[BaseException], str]]:
    """Each act on both instruments: the class and message of each refusal must agree."""
    refused = []
    for name, act in acts:
        caught: list[BaseException] = []
        for instrument in (local, adapter):
            with pytest.raises(InstrumentError) as error:
                await act(instrument)
            caught.append(error.value)
        in_process, over_wire = caught
        assert type(over_wire) is type(in_process), (name, over_wire, in_process)
        assert str(over_wire) == str(in_process), name
        refused.append((name, type(in_process), str(in_process)))
    return refused


async def test_storage_refusals_are_the_in_process_errors_with_the_same_messages() -> None:
    local, remote = make_storage(), make_storage()
    async with serve_storage(remote) as server:
        adapter = await OpcUaCryoStorage.connect(server.url, clock=remote.world.clock)
        async with adapter:
            for instrument in (local, adapter):
                await instrument.store("bag 1", at())
            acts: list[tuple[str, Act]] = [
                ("unknown container", lambda s: s.store("NO-SUCH-BAG", at(slot=2))),
                ("position taken", lambda s: s.store("bag 2", at())),
                ("already stored", lambda s: s.store("bag 1", at(slot=2))),
                ("no such rack", lambda s: s.store("bag 2", at(rack="Z"))),
                ("box out of range", lambda s: s.store("bag 2", at(box=99))),
                ("not stored", lambda s: s.retrieve("bag 2")),
            ]
            refused = await _refusals(local, adapter, acts)
            for instrument in (local, remote):  # a leak: the freezer warms up
                instrument.inject(LN2LevelDrop(drop_pct=85.0))
            await anyio.sleep(12 * 3600)
            refused += await _refusals(
                local, adapter, [("too warm", lambda s: s.store("bag 2", at(slot=2)))]
            )
            remote.inject(CommandFailure(message="lid jammed"))
            with pytest.raises(InstrumentError, match=r"CryoStorage LN2-0001: .*lid jammed"):
                await adapter.retrieve("bag 1")
            assert [item.container_id for item in await adapter.inventory()] == ["bag 1"]
    messages = {name: (cls.__name__, text) for name, cls, text in refused}
    assert messages["unknown container"] == (
        "InstrumentError",
        "CryoStorage LN2-0001: no container 'NO-SUCH-BAG' on the line; known: APH-1, bag 1, bag 2",
    )
    assert messages["position taken"] == (
        "InstrumentError",
        "CryoStorage LN2-0001: rack A box 1 slot 1 is occupied by 'bag 1'; choose a free position",
    )
    assert messages["box out of range"][0] == "OutOfRangeError"
    assert "above the limit -150 °C" in messages["too warm"][1]


async def test_cytometer_refusals_are_the_in_process_errors_with_the_same_messages() -> None:
    (local, sample), (remote, _) = make_cytometer(), make_cytometer()
    tiny = local.world.draw_sample(local.world.containers["APH-1"], 1e-5, prefix="TINY")
    remote.world.draw_sample(remote.world.containers["APH-1"], 1e-5, prefix="TINY")
    stray = Sample(
        sample_id="NOT-DRAWN", source_container_id="APH-1", volume_ml=1.0,
        drawn_at_process_time_s=0.0,
    )  # fmt: skip
    async with serve_cytometer(remote) as server:
        adapter = await OpcUaFlowCytometer.connect(server.url, clock=remote.world.clock)
        async with adapter:
            acts: list[tuple[str, Act]] = [
                ("unknown panel", lambda c: c.immunophenotype(sample, "NO-PANEL")),
                ("sample not on the line", lambda c: c.immunophenotype(stray)),
                ("too few cells", lambda c: c.immunophenotype(tiny)),
            ]
            refused = await _refusals(local, adapter, acts)
    messages = {name: (cls.__name__, text) for name, cls, text in refused}
    assert messages["unknown panel"] == (
        "InstrumentError",
        "FlowCytometer FC-0001: unknown panel 'NO-PANEL'; known: CAR-T release, "
        "CAR in-process, T-cell purity, NK phenotype",
    )
    assert "sample 'NOT-DRAWN' is not on the line" in messages["sample not on the line"][1]
    assert messages["too few cells"][0] == "OutOfRangeError"
