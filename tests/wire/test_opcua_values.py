"""Served values are good from the first read, fresh later, and cost the model nothing."""

from __future__ import annotations

import anyio
import pytest
from asyncua import Client, ua

from cellauto.instruments.opcua.lads import CELLAUTO_URI
from cellauto.sim.bioreactor import SimBioreactor
from cellauto.sim.opcua import serve_bioreactor, serve_processor
from tests.wire.test_opcua_support import (
    make_bioreactor,
    make_processor,
    plain_client,
    variables_below,
)

pytestmark = pytest.mark.anyio

_BASE = "bioreactor/FunctionalUnitSet/Unit1/FunctionSet"


async def _read_all(client: Client, device: str) -> dict[str, ua.DataValue]:
    own = (await client.get_namespace_array()).index(CELLAUTO_URI)
    variables = await variables_below(client.get_node(ua.NodeId(device, own)))
    values = await client.read_attributes(variables, ua.AttributeIds.Value)
    return {v.nodeid.to_string(): value for v, value in zip(variables, values, strict=True)}


def _bad(values: dict[str, ua.DataValue]) -> dict[str, str]:
    return {k: v.StatusCode.name for k, v in values.items() if not v.StatusCode.is_good()}


async def _current(client: Client, function: str, name: str = "CurrentValue") -> ua.DataValue:
    own = (await client.get_namespace_array()).index(CELLAUTO_URI)
    return await client.get_node(ua.NodeId(f"{_BASE}/{function}/{name}", own)).read_data_value()


async def test_every_bioreactor_value_is_good_at_once_and_later_when_sampled_on_request() -> None:
    sim = make_bioreactor()
    await sim.seed("APH-1", volume_ml=50.0, medium_ml=400.0)
    async with (
        serve_bioreactor(sim, sample_interval_s=None, port=0) as server,
        plain_client(server.url) as client,
    ):
        first = await _read_all(client, "bioreactor")
        assert len(first) > 40
        assert _bad(first) == {}
        temperature = await _current(client, "TemperatureController")
        assert temperature.Value.Value == pytest.approx(20.0)
        assert (await _current(client, "pHController")).Value.Value == pytest.approx(7.2)
        volume = await _current(client, "CultureVolumeSensor", "SensorValue")
        assert volume.Value.Value == pytest.approx(450.0)
        glucose = await _current(client, "GlucoseSensor", "SensorValue")
        noise_state = sim.rng.bit_generator.state

        await anyio.sleep(2 * 3600)  # two process hours, no sample requested
        later = await _read_all(client, "bioreactor")
        assert _bad(later) == {}
        again = await _current(client, "TemperatureController")
        assert again.SourceTimestamp > temperature.SourceTimestamp
        fresher = await _current(client, "GlucoseSensor", "SensorValue")
        assert 0 < fresher.Value.Value <= glucose.Value.Value  # the cells used some
        assert sim.rng.bit_generator.state == noise_state  # no draw from the seeded stream


async def test_every_processor_value_is_good_at_once() -> None:
    sim = make_processor()
    async with serve_processor(sim, port=0) as server, plain_client(server.url) as client:
        values = await _read_all(client, "processor")
        assert len(values) > 20
        assert _bad(values) == {}


async def test_snapshots_never_change_what_the_instrument_reads_later() -> None:
    looked_at, untouched = make_bioreactor(seed=3), make_bioreactor(seed=3)
    readings: dict[str, list[dict[str, float]]] = {}

    async def read_thrice(name: str, sim: SimBioreactor) -> None:
        await sim.seed("APH-1", volume_ml=50.0, medium_ml=400.0)
        values = []
        for _ in range(3):
            for _ in range(5):
                if sim is looked_at:
                    sim.snapshot_values()
                await anyio.sleep(317.0)
            values.append(await sim.read_process_values())
        readings[name] = [v.model_dump() for v in values]

    async with anyio.create_task_group() as group:
        group.start_soon(read_thrice, "looked_at", looked_at)
        group.start_soon(read_thrice, "untouched", untouched)
    assert readings["looked_at"] == readings["untouched"]  # bit for bit
    snapshot = looked_at.snapshot_values()
    assert snapshot.temperature_c == 20.0 and snapshot.ph == 7.2  # no noise
