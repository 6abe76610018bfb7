"""VisaThawer over TCP against the simulated thawer: the in-process thaw, overlapped; a
container thawed once, also when the controller lost the reply to its THAW."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from cellauto.clock import Clock
from cellauto.instruments.thawer import Thawer
from cellauto.instruments.visa import ScpiInstrumentError, VisaThawer, connect_visa
from cellauto.instruments.visa.errors import ScpiReplyError
from cellauto.instruments.visa.thawer import parse_thaw
from cellauto.sim.action_log import ActionLog, read_actions
from cellauto.sim.material import Container, FrozenState
from cellauto.sim.scpi import ThawerScpi, scpi_device, serve_scpi
from cellauto.sim.thaw import SimThawer
from cellauto.sim.world import SimWorld
from tests.wire.scpi_support import ORIGIN

pytestmark = pytest.mark.anyio


def make_thawer(seed: int = 3) -> SimThawer:
    world = SimWorld(Clock(ORIGIN), seed=seed)
    for vial in ("QC retain 1", "QC retain 2"):
        world.add_container(
            Container(vial, viable_cells=2.0e7, dead_cells=1.5e6, volume_ml=0.5, dmso_pct=7.5)
        ).frozen = FrozenState(frozen_at_h=1.0, cooling_rate_c_per_min=-1.1, latent_heat_rise_c=1.5)
    world.add_container(Container("fresh", viable_cells=1e7, volume_ml=0.5))
    return SimThawer(world)


async def test_a_thaw_over_visa_is_the_in_process_thaw_and_is_overlapped() -> None:
    local, remote = make_thawer(), make_thawer()
    want = await local.thaw("QC retain 1")
    async with serve_scpi(scpi_device(remote)) as server:
        thawer = await connect_visa(Thawer, server.resource_name, timeout_s=2.0)
        assert isinstance(thawer, VisaThawer)
        async with thawer:
            assert (thawer.identity.adapter, thawer.identity.serial) == ("visa", "TH-0001")
            started = anyio.current_time()
            got = await thawer.thaw("QC retain 1")
            assert 240 <= anyio.current_time() - started < 260  # polled every 10 s
            assert thawer.found_done == []
    assert got.container_id == "QC retain 1"
    assert (got.duration_s, got.final_temperature_c) == (want.duration_s, want.final_temperature_c)
    # the remote thaw began when the local one ended, 240 s of process time later
    assert got.process_time_s - want.process_time_s == pytest.approx(240.0, abs=1.0)
    local_vial = local.world.containers["QC retain 1"]
    remote_vial = remote.world.containers["QC retain 1"]
    assert remote_vial.viability_pct == pytest.approx(local_vial.viability_pct)
    assert remote_vial.viable_cells == pytest.approx(local_vial.viable_cells)


async def test_refusals_name_the_error_and_a_thawed_vial_is_not_thawed_again(
    tmp_path: Path,
) -> None:
    sim = make_thawer()
    device = ThawerScpi(sim)
    with ActionLog(tmp_path / "actions.jsonl", sim.world.clock).watch({"thawer": sim}):
        async with (
            serve_scpi(device) as server,
            await VisaThawer.connect(server.resource_name) as thawer,
        ):
            with pytest.raises(ScpiInstrumentError, match="'fresh' is not frozen") as fresh:
                await thawer.thaw("fresh")
            assert fresh.value.errors[0][0] == -221
            with pytest.raises(ScpiInstrumentError, match="no container 'bag 9'") as gone:
                await thawer.thaw("bag 9")
            assert gone.value.errors[0][0] == 121
            first = await thawer.thaw("QC retain 1")
            # asked again (a resumed step): the thaw that happened, not a second one
            assert await thawer.thaw("QC retain 1") == first
            assert thawer.found_done == ["QC retain 1"]
            with pytest.raises(ScpiInstrumentError, match="thawed here before"):
                await thawer.session.command('THAW "QC retain 1"')
    actions = read_actions(tmp_path / "actions.jsonl")
    assert [(a.method, a.arguments, a.ok) for a in actions] == [
        ("thaw", {"container_id": "QC retain 1"}, True)
    ]
    assert sim.world.containers["QC retain 2"].frozen == FrozenState(1.0, -1.1, 1.5)


async def test_a_controller_killed_after_sending_thaw_finds_the_thaw_on_resume() -> None:
    """The first controller sends THAW and dies before the reply; the next one, asking for
    the same thaw, follows the thaw under way and returns its result: one thaw."""
    sim = make_thawer()
    async with serve_scpi(scpi_device(sim)) as server:
        killed = await VisaThawer.connect(server.resource_name)
        await killed.session.query('THAW "QC retain 1";STAT:OPER:COND?', int)  # sent, no reply read
        await killed.aclose()
        await anyio.sleep(60)  # the controller restarts while the vial thaws
        async with await VisaThawer.connect(server.resource_name) as resumed:
            assert (await resumed.record("QC retain 1")).state == "thawing"
            result = await resumed.thaw("QC retain 1")
            assert resumed.found_done == ["QC retain 1"]
            assert (await resumed.record("QC retain 2")).state == "none"
    assert result.container_id == "QC retain 1"
    assert result.process_time_s == pytest.approx((ORIGIN.timestamp() + 240.0), abs=1.0)
    frozen = sim.world.containers["QC retain 1"].frozen
    assert frozen is not None and frozen.thawed
    assert sum("thawed in" in h for h in sim.world.containers["QC retain 1"].history) == 1


def test_a_garbled_or_incomplete_thaw_reply_is_refused() -> None:
    assert parse_thaw('NONE,"v",9.91E+37,9.91E+37,9.91E+37').result is None
    done = parse_thaw('DONE,"v",240,4,1000')
    assert done.result is not None and done.result.final_temperature_c == 4.0
    with pytest.raises(ScpiReplyError, match="DONE thaw without"):
        parse_thaw('DONE,"v",240,9.91E+37,1000')
    with pytest.raises(ScpiReplyError, match="not one of"):
        parse_thaw('THAWED,"v",240,4,1000')
    with pytest.raises(ScpiReplyError, match="values a ThawResult cannot hold"):
        parse_thaw('DONE,"v",-1,4,1000')
