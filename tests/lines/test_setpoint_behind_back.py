"""A setpoint changed on the served bioreactor by another client is seen by the run.

Mid-run (day 3 of a CAR-T batch over OPC UA) a second, plain asyncua client writes the
bioreactor's TemperatureController/TargetValue. The device applies it (as a real one
does); the adapter sees the change, the journal gets a major alarm and a deviation
naming the node, the run's value and the new one, and the line's policy is carried out.
"""

from __future__ import annotations

from contextlib import AsyncExitStack, closing
from pathlib import Path
from typing import Any

import anyio
import pytest
from asyncua import ua

from cellauto.clock import Clock
from cellauto.instruments.opcua.lads import CELLAUTO_URI
from cellauto.lines import LineConfig, load_line_config
from cellauto.lines.wire import GapRecorder, open_line, serve_simulated
from cellauto.protocols import Runner, load_protocol
from cellauto.protocols.params import build_params
from cellauto.protocols.states import State
from cellauto.records import Journal
from cellauto.records import payloads as rec
from cellauto.records.backend import Location
from cellauto.records.spec import CheckPolicy
from cellauto.sim import SimLine, starting_materials
from cellauto.sim.simulate import DEFAULT_SIM_START
from cellauto.sim.site_for_run import simulated_site
from tests.wire.test_opcua_support import plain_client

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]
TARGET = "bioreactor/FunctionalUnitSet/Unit1/FunctionSet/TemperatureController/TargetValue"


def _line(policy: str) -> LineConfig:
    config = load_line_config(ROOT / "lines" / "sim-opcua.toml")
    bioreactor = config.equipment["bioreactor"].model_copy(update={"on_setpoint_changed": policy})
    return config.model_copy(update={"equipment": {**config.equipment, "bioreactor": bioreactor}})


async def _run_with_a_write_on_day_three(
    policy: str, journal_path: Path
) -> tuple[Any, list[rec.Payload], dict[str, Any]]:
    config = _line(policy)
    protocol = load_protocol(ROOT / "protocols" / "car_t_autologous.py")
    params = build_params(protocol.params, {}, rehearsal=True)
    sim = SimLine(
        clock=Clock(DEFAULT_SIM_START),
        seed=7,
        materials=starting_materials(protocol.inputs, params),
    )
    servers: dict[str, Any] = {}
    seen: dict[str, Any] = {}
    gaps = GapRecorder()
    async with AsyncExitStack() as stack:
        needed = protocol.equipment()
        endpoints = await serve_simulated(config, sim, needed, stack, servers)
        line = await open_line(config, needed, stack, sim=sim, endpoints=endpoints, gaps=gaps)
        device = sim.equipment["bioreactor"]
        with Journal(journal_path) as journal:
            runner = Runner(journal, clock_origin=DEFAULT_SIM_START, reproducible=True)
            site = stack.enter_context(
                closing(simulated_site(protocol, params, line, DEFAULT_SIM_START))
            )
            execution = runner.prepare(protocol, line, params, seed=7, site=site)
            gaps.journal_to(execution)

            async def another_client_on_day_three() -> None:
                await anyio.sleep(3 * 86400)
                seen["before"] = device.setpoints.temperature_c
                async with plain_client(servers["bioreactor"].url) as client:
                    own = (await client.get_namespace_array()).index(CELLAUTO_URI)
                    node = client.get_node(ua.NodeId(TARGET, own))
                    await node.write_value(39.0)
                    await anyio.sleep(600)
                    seen["after_10_min"] = device.setpoints.temperature_c
                    seen["shown"] = await node.read_value()
                for _ in range(10 * 24):  # a held run waits for a person: stop it
                    if execution.state is State.HELD:
                        seen["held"] = True
                        execution.command("Stop", by="test", reason="held after the change")
                        break
                    await anyio.sleep(3600)

            async with anyio.create_task_group() as tg:
                tg.start_soon(another_client_on_day_three)
                outcome = await execution.execute()
                execution.close()
                tg.cancel_scope.cancel()  # the other client is done, or never will be
            records = [r.payload for r in journal.records(execution.run_id)]
    return outcome, records, seen


def _setpoint_records(records: list[rec.Payload]) -> tuple[list[rec.Alarm], list[rec.Deviation]]:
    alarms = [r for r in records if isinstance(r, rec.Alarm) and "setpoint" in r.message]
    deviations = [r for r in records if isinstance(r, rec.Deviation) and "setpoint" in r.check]
    return alarms, deviations


def _names_the_change(message: str) -> None:
    assert "temperature_c" in message and TARGET in message
    assert "from the run's 37 to 39" in message


async def test_restore_writes_the_runs_setpoint_back(db_location: Location, tmp_path: Path) -> None:
    outcome, records, seen = await _run_with_a_write_on_day_three("restore", db_location)
    assert outcome.exit_status == "complete", outcome.reason
    assert "held" not in seen  # 39 °C for long would fail the culture temperature check
    assert seen["before"] == 37.0
    assert seen["after_10_min"] == 37.0  # written back within seconds of process time
    assert seen["shown"] == 37.0
    (alarm,), (deviation,) = _setpoint_records(records)  # one each: none for its own sets
    assert alarm.severity == "major" and alarm.source == "bioreactor"
    _names_the_change(alarm.message)
    assert "policy restore" in alarm.message
    assert deviation.policy is CheckPolicy.CONTINUE and deviation.value == 39.0
    _names_the_change(deviation.description)
    assert deviation.step == "expand"


async def test_hold_holds_the_run(db_location: Location, tmp_path: Path) -> None:
    outcome, records, seen = await _run_with_a_write_on_day_three("hold", db_location)
    assert outcome.exit_status == "stopped", outcome.reason
    assert seen["held"]
    assert seen["after_10_min"] == 39.0  # the device keeps what the other client set
    (alarm,), (deviation,) = _setpoint_records(records)
    _names_the_change(alarm.message)
    assert deviation.policy is CheckPolicy.HOLD
    changes = [r for r in records if isinstance(r, rec.StateChange)]
    holding = next(c for c in changes if c.to_state == "Holding")
    assert "deviation" in holding.cause and TARGET in holding.cause
