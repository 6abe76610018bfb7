"""PlrLiquidHandler on PyLabRobot 0.2.2's chatterbox backend: tracking, refusals, rollback."""

from __future__ import annotations

import logging
import math
from typing import Any

import anyio
import pylabrobot.resources.tip_tracker as plr_tip_tracker
import pylabrobot.resources.volume_tracker as plr_volume_tracker
import pytest
from pylabrobot.resources import does_tip_tracking, does_volume_tracking
from pylabrobot.resources.errors import TooLittleVolumeError

from cellauto.errors import InstrumentError, OutcomeUnknownError, OutOfRangeError
from cellauto.instruments.liquid_handler import LiquidHandler, TransferOutcomeUnknownError
from cellauto.instruments.plr import (
    ContainerSpec,
    LoggingChatterboxBackend,
    PlrLiquidHandler,
    TrackerSnapshot,
    split_volume,
)

pytestmark = pytest.mark.anyio


class FailingBackend(LoggingChatterboxBackend):
    """Raises on the n-th dispense (or hangs there, to be cancelled)."""

    def __init__(self, fail_on_dispense: int, *, hang: bool = False) -> None:
        super().__init__()
        self.fail_on_dispense = fail_on_dispense
        self.hang = hang
        self.dispenses = 0

    async def dispense(self, ops: list[Any], use_channels: list[int], **kw: Any) -> None:
        self.dispenses += 1
        if self.dispenses == self.fail_on_dispense:
            if self.hang:
                await anyio.sleep(3600)
            raise RuntimeError("dispense valve jammed")
        await super().dispense(ops, use_channels, **kw)


def handler(backend: LoggingChatterboxBackend | None = None, **kwargs: Any) -> PlrLiquidHandler:
    specs = [
        ContainerSpec(container_id="bag-1", kind="bag", capacity_ul=600_000, volume_ul=10_000),
        ContainerSpec(container_id="vial-1", capacity_ul=2_000),
        ContainerSpec(container_id="qc-1", capacity_ul=1_500),
        ContainerSpec(container_id="qc-2", capacity_ul=1_500),
    ]
    return PlrLiquidHandler(containers=specs, backend=backend, serial="PLR-7", **kwargs)


def state(lh: PlrLiquidHandler) -> Any:
    return TrackerSnapshot.take(lh.plr).state()


async def test_identity_tracking_switches_and_interface() -> None:
    lh = handler()
    assert isinstance(lh, LiquidHandler)
    assert lh.identity.model_dump() == {
        "vendor": "PyLabRobot",
        "model": "LiquidHandlerChatterboxBackend",
        "serial": "PLR-7",
        "firmware": "0.2.2",
        "adapter": "pylabrobot",
    }
    assert does_volume_tracking() and does_tip_tracking()  # global, switched on by the adapter
    assert lh.tip_capacity_ul == 1000.0
    assert await lh.containers() == {"bag-1": 10_000, "vial-1": 0, "qc-1": 0, "qc-2": 0}


def test_split_volume() -> None:
    assert split_volume(2500, 1000) == [1000, 1000, 500]
    assert split_volume(1000, 1000) == [1000]
    assert split_volume(0.5, 1000) == [0.5]
    assert sum(split_volume(3000.0000001, 1000)) == pytest.approx(3000.0000001, abs=1e-12)


async def test_transfer_splits_into_cycles_and_uses_one_fresh_tip(
    capsys: pytest.CaptureFixture[str],
) -> None:
    lh = handler()
    done = await lh.transfer("bag-1", "vial-1", 1500)
    assert (done.source_container_id, done.destination_container_id) == ("bag-1", "vial-1")
    assert done.volume_ul == 1500 and done.cycles == 2 and done.tips_used == ["tips_1:A1"]
    assert (done.source_volume_after_ul, done.destination_volume_after_ul) == (8500, 1500)
    assert await lh.volume("bag-1") == 8500 and await lh.volume("vial-1") == 1500
    assert await lh.tips_remaining() == 2 * 96 - 1
    assert not lh.layout.tip_racks[0].get_item("A1").has_tip()  # consumed, not returned
    assert not lh.plr.head[0].has_tip
    second = await lh.transfer("bag-1", "vial-1", 200)
    assert second.tips_used == ["tips_1:B1"]
    assert capsys.readouterr().out == ""  # the chatterbox logs instead of printing


async def test_aliquot_gives_each_destination_its_own_tip() -> None:
    lh = handler()
    done = await lh.aliquot("bag-1", ["qc-1", "qc-2", "vial-1"], 300)
    assert [t.destination_container_id for t in done] == ["qc-1", "qc-2", "vial-1"]
    assert [t.tips_used for t in done] == [["tips_1:A1"], ["tips_1:B1"], ["tips_1:C1"]]
    assert [t.source_volume_after_ul for t in done] == [9700, 9400, 9100]
    assert await lh.containers() == {"bag-1": 9100, "vial-1": 300, "qc-1": 300, "qc-2": 300}


@pytest.mark.parametrize("bad", [0, -5.0, math.nan, math.inf])
async def test_volume_at_or_below_zero_or_not_a_number_is_refused_first(bad: float) -> None:
    lh = handler()
    before = state(lh)
    with pytest.raises(OutOfRangeError, match="limit 0 µL"):
        await lh.transfer("bag-1", "vial-1", bad)
    with pytest.raises(OutOfRangeError, match="volume_ul_each"):
        await lh.aliquot("bag-1", ["qc-1"], bad)
    assert state(lh) == before and not lh.plr.setup_finished  # PyLabRobot saw nothing


async def test_over_draw_and_over_fill_are_refused_naming_the_limit() -> None:
    lh = handler()
    before = state(lh)
    with pytest.raises(OutOfRangeError, match=r"above the room left in 'vial-1', the limit 2000"):
        await lh.transfer("bag-1", "vial-1", 2500)
    with pytest.raises(OutOfRangeError, match=r"above what 'bag-1' holds, the limit 10000 µL"):
        await lh.aliquot("bag-1", ["qc-1", "qc-2"], 6000)
    await lh.transfer("bag-1", "vial-1", 1000)
    with pytest.raises(OutOfRangeError, match="above what 'vial-1' holds"):
        await lh.transfer("vial-1", "qc-1", 1200)
    assert await lh.tips_remaining() == 2 * 96 - 1
    assert state(lh) != before  # only the good transfer changed anything


async def test_unknown_containers_are_named_with_the_known_ones() -> None:
    lh = handler()
    with pytest.raises(InstrumentError, match=r"no container 'bag-9' .* known: bag-1, qc-1"):
        await lh.transfer("bag-9", "vial-1", 10)
    with pytest.raises(InstrumentError, match="no container 'vial-9'"):
        await lh.aliquot("bag-1", ["qc-1", "vial-9"], 10)
    with pytest.raises(InstrumentError, match="no container 'x'"):
        await lh.volume("x")
    with pytest.raises(InstrumentError, match="twice"):
        await lh.aliquot("bag-1", ["qc-1", "qc-1"], 10)
    with pytest.raises(InstrumentError, match="into itself"):
        await lh.transfer("bag-1", "bag-1", 10)
    assert await lh.tips_remaining() == 2 * 96


async def test_a_failure_after_the_hardware_acted_is_outcome_unknown_not_rolled_back() -> None:
    backend = FailingBackend(fail_on_dispense=2)
    lh = handler(backend)
    await lh.setup()
    with pytest.raises(TransferOutcomeUnknownError) as caught:
        await lh.transfer("bag-1", "vial-1", 1800)
    error = caught.value
    assert isinstance(error, OutcomeUnknownError)  # the runner records it as such
    message = str(error)
    assert "failed at dispense 800 µL into vial-1 (cycle 2 of 2)" in message
    assert "dispense valve jammed" in message and "outcome is unknown" in message
    assert "Nothing was rolled back" in message and "restored" not in message
    assert error.in_doubt == ["bag-1", "vial-1"]
    assert isinstance(error.__cause__, RuntimeError)
    # what PyLabRobot committed stays: cycle 1 moved 1000 µL, cycle 2 aspirated 800 µL
    volumes = {c: lh.layout.containers[c].tracker.volume for c in ("bag-1", "vial-1")}
    assert volumes == {"bag-1": 8_200, "vial-1": 1_000}
    assert lh.plr.head[0].has_tip and lh.plr.head[0].get_tip().tracker.volume == 800
    assert all(c.tracker.pending_volume == c.tracker.volume for c in lh.layout.containers.values())
    assert set(lh.in_doubt.items) == {"bag-1", "vial-1", "channel"}
    # in doubt until an operator says otherwise: reads and uses are refused, naming why
    with pytest.raises(InstrumentError, match=r"volume in 'vial-1' is unknown since transfer"):
        await lh.volume("vial-1")
    with pytest.raises(InstrumentError, match=r"channel's state is unknown.*confirm_head_clear"):
        await lh.transfer("qc-1", "qc-2", 10)
    assert await lh.volume("qc-1") == 0  # untouched containers read as before
    lh.confirm_head_clear()
    with pytest.raises(InstrumentError, match=r"'bag-1' is unknown.*confirm_volume\('bag-1'"):
        await lh.transfer("bag-1", "qc-1", 10)
    lh.confirm_volume("bag-1", 8_150)
    lh.confirm_volume("vial-1", 1_000)
    assert not lh.in_doubt.items and not lh.plr.head[0].has_tip
    done = await lh.transfer("bag-1", "qc-1", 500)
    assert done.source_volume_after_ul == 7_650 and await lh.volume("vial-1") == 1_000


async def test_a_refusal_before_the_backend_acted_still_rolls_back_cleanly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lh = handler(FailingBackend(fail_on_dispense=99))
    await lh.setup()
    before = state(lh)

    async def refused(*args: Any, **kwargs: Any) -> None:  # PyLabRobot's own validation
        raise ValueError("tip spot tips_1:A1 has no tip")

    monkeypatch.setattr(lh.plr, "pick_up_tips", refused)
    with pytest.raises(InstrumentError) as caught:
        await lh.transfer("bag-1", "vial-1", 100)
    assert not isinstance(caught.value, OutcomeUnknownError)
    assert "before anything moved" in str(caught.value) and "restored" in str(caught.value)
    assert state(lh) == before and not lh.in_doubt.items
    monkeypatch.undo()
    assert (await lh.transfer("bag-1", "vial-1", 100)).tips_used == ["tips_1:A1"]


async def test_an_aliquot_failing_part_way_keeps_the_aliquots_done() -> None:
    lh = handler(FailingBackend(fail_on_dispense=2))
    await lh.setup()
    with pytest.raises(TransferOutcomeUnknownError, match="dispense 300 µL into qc-2") as caught:
        await lh.aliquot("bag-1", ["qc-1", "qc-2"], 300)
    assert caught.value.in_doubt == ["bag-1", "qc-1", "qc-2"]
    assert lh.layout.containers["qc-1"].tracker.volume == 300  # done, not undone
    assert lh.layout.containers["qc-2"].tracker.volume == 0


async def test_a_transfer_cancelled_after_the_hardware_acted_stays_a_cancellation_in_doubt() -> (
    None
):
    lh = handler(FailingBackend(fail_on_dispense=1, hang=True))
    await lh.setup()
    with anyio.move_on_after(10) as scope:
        await lh.transfer("bag-1", "vial-1", 100)
    assert scope.cancelled_caught
    assert set(lh.in_doubt.items) == {"bag-1", "vial-1", "channel"}
    assert lh.layout.containers["bag-1"].tracker.volume == 9_900  # the aspirate happened


async def test_snapshot_undoes_pylabrobots_pending_volume_leftover() -> None:
    """The 0.2.2 pitfall: an aspirate the tip cannot hold leaves pending volume behind."""
    lh = handler()
    await lh.setup()
    source = lh.layout.containers["bag-1"]
    await lh.plr.pick_up_tips([lh.layout.next_tip_spot()], use_channels=[0])
    snapshot = TrackerSnapshot.take(lh.plr)
    with pytest.raises(TooLittleVolumeError):
        await lh.plr.aspirate([source], vols=[1100], use_channels=[0])
    assert source.tracker.pending_volume == 8_900  # left behind by PyLabRobot
    snapshot.restore()
    assert source.tracker.pending_volume == source.tracker.volume == 10_000
    await lh.plr.discard_tips(use_channels=[0])


async def test_running_out_of_tips_is_refused_before_anything_moves() -> None:
    lh = handler(tip_racks=1)
    lh.layout.tip_racks[0].set_tip_state([False] * 95 + [True])
    with pytest.raises(InstrumentError, match=r"needs 2 fresh tip\(s\), 1 left"):
        await lh.aliquot("bag-1", ["qc-1", "qc-2"], 10)
    assert await lh.volume("bag-1") == 10_000
    lh.reload_tips()
    assert await lh.tips_remaining() == 96


async def test_tracking_switched_off_elsewhere_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    lh = handler()
    monkeypatch.setattr(plr_volume_tracker, "volume_tracking_enabled", False)
    with pytest.raises(InstrumentError, match="volume tracking was switched off"):
        await lh.transfer("bag-1", "vial-1", 10)
    monkeypatch.setattr(plr_tip_tracker, "tip_tracking_enabled", False)
    with pytest.raises(InstrumentError, match="volume and tip tracking"):
        await lh.transfer("bag-1", "vial-1", 10)


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def test_pylabrobot_log_records_reach_our_logging(caplog: pytest.LogCaptureFixture) -> None:
    handler()
    handler()  # the forwarding handler is installed once
    plr_logger = logging.getLogger("pylabrobot")
    ours = Collect()
    logging.getLogger("cellauto").addHandler(ours)
    try:
        with caplog.at_level(logging.INFO):
            plr_logger.warning("tip presence unknown on channel 0")
    finally:
        logging.getLogger("cellauto").removeHandler(ours)
    assert [r.getMessage() for r in ours.records] == ["tip presence unknown on channel 0"]
    assert plr_logger.propagate is False  # PyLabRobot's own setting, left alone
    assert [r.getMessage() for r in caplog.records] == ["tip presence unknown on channel 0"]


async def test_container_ids_must_be_unique_on_the_deck() -> None:
    lh = handler()
    with pytest.raises(Exception, match="already a container"):
        lh.load_container(ContainerSpec(container_id="vial-1", capacity_ul=10))
    with pytest.raises(Exception, match="already a deck resource"):
        lh.load_container(ContainerSpec(container_id="trash", capacity_ul=10))
    with pytest.raises(ValueError, match="above its capacity_ul"):
        ContainerSpec(container_id="x", capacity_ul=10, volume_ul=20)
