"""`cellauto sim serve` serves the cytometer and the cryostorage to another process."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest
from asyncua import Client, ua

from cellauto.errors import InstrumentError
from cellauto.instruments.cryo_storage import StoragePosition
from cellauto.instruments.opcua import OpcUaCellProcessor, OpcUaCryoStorage, OpcUaFlowCytometer

pytestmark = pytest.mark.anyio

LINE = """
name = "serve-more"
[simulation]
seed = 3
speed = 600
[[simulation.materials]]
container_id = "sample tube 1"
material = "pbmc"
[equipment.processor]
adapter = "opcua"
interface = "CellProcessor"
endpoint = "opc.tcp://127.0.0.1:0/cellauto/processor"
[equipment.cytometer]
adapter = "opcua"
interface = "FlowCytometer"
endpoint = "opc.tcp://127.0.0.1:0/cellauto/cytometer"
[equipment.storage]
adapter = "opcua"
interface = "CryoStorage"
endpoint = "opc.tcp://127.0.0.1:0/cellauto/storage"
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # this process is another machine on the line: real time


@pytest.fixture(scope="module")
def endpoints(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One `cellauto sim serve` process for the module's tests."""
    line = tmp_path_factory.mktemp("serve") / "serve.toml"
    line.write_text(LINE, encoding="utf-8")
    server = subprocess.Popen(
        [sys.executable, "-m", "cellauto", "sim", "serve", str(line), "--for-s", "300"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        yield json.loads(server.stdout.readline())["endpoints"]
    finally:
        server.terminate()
        server.wait(timeout=30)


async def test_a_plain_client_reads_good_values_from_the_first_read(
    endpoints: dict[str, str],
) -> None:
    for device, path in (
        ("storage", "FunctionSet/TemperatureSensor/SensorValue"),
        ("storage", "FunctionSet/LN2LevelController/CurrentValue"),
        ("storage", "Inventory"),
        ("cytometer", "LastResult/CarPct"),
        ("cytometer", "FunctionalUnitState/CurrentState"),
    ):
        async with Client(endpoints[device]) as client:
            own = (await client.get_namespace_array()).index("urn:cellauto:opcua")
            node = client.get_node(ua.NodeId(f"{device}/FunctionalUnitSet/Unit1/{path}", own))
            data = await node.read_data_value(raise_on_bad_status=False)
            assert data.StatusCode is not None and data.StatusCode.is_good(), (path, data)


async def test_a_controller_in_another_process_phenotypes_and_stores_a_sample(
    endpoints: dict[str, str],
) -> None:
    processor = await OpcUaCellProcessor.connect(endpoints["processor"])
    cytometer = await OpcUaFlowCytometer.connect(endpoints["cytometer"])
    storage = await OpcUaCryoStorage.connect(endpoints["storage"])
    async with processor, cytometer, storage:
        sample = await processor.draw_sample("sample tube 1", 1.0)
        phenotype = await cytometer.immunophenotype(sample, "T-cell purity", operator="carol")
        assert phenotype.sample_id == sample.sample_id and phenotype.operator == "carol"
        assert phenotype.cd3_pct == pytest.approx(60.0, abs=5.0)  # PBMC: 60 % T cells
        place = StoragePosition(rack="C", box=2, slot=5)
        stored = await storage.store("sample tube 1", place)
        assert stored.position == place
        assert [item.container_id for item in await storage.inventory()] == ["sample tube 1"]
        with pytest.raises(InstrumentError, match="no container 'NO-BAG' on the line"):
            await storage.store("NO-BAG", StoragePosition(rack="C", box=2, slot=6))
        assert (await storage.retrieve("sample tube 1")) == stored
        assert (await storage.conditions()).temperature_c < -150.0
