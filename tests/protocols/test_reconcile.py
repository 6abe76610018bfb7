"""add_once / feed_once: an addition found in the culture volume is never repeated."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from cellauto.instruments import Reagent
from cellauto.protocols.reconcile import add_once, feed_once

pytestmark = pytest.mark.anyio


class FakeRun:
    """The part of a Run the helpers use: checkpoints and whether the step resumed."""

    def __init__(self, values: dict[str, Any] | None = None, resumed: bool = False) -> None:
        self.values = dict(values or {})  # the checkpoints
        self.resumed = object() if resumed else None

    def checkpoint_or(self, name: str, default: Any) -> Any:
        return self.values.get(name, default)

    def set_checkpoint(self, name: str, value: Any) -> None:
        self.values[name] = value


class FakeBag:
    def __init__(self, volume_ml: float) -> None:
        self.volume_ml = volume_ml
        self.additions: list[float] = []

    async def read_process_values(self) -> Any:
        return SimpleNamespace(culture_volume_ml=self.volume_ml)

    async def add_reagent(self, reagent: Reagent) -> None:
        self.additions.append(reagent.volume_ml)
        self.volume_ml += reagent.volume_ml

    async def feed(self, volume_ml: float) -> None:
        self.additions.append(volume_ml)
        self.volume_ml += volume_ml


VECTOR = Reagent(name="CAR vector", kind="vector", volume_ml=5.0)


async def test_a_first_addition_records_the_volume_before_it_then_done() -> None:
    run, bag = FakeRun(), FakeBag(100.0)
    assert await add_once(run, bag, VECTOR) is True  # type: ignore[arg-type]
    assert run.values == {"CAR vector: culture volume before": 100.0, "CAR vector: done": True}
    assert await add_once(run, bag, VECTOR) is False  # type: ignore[arg-type]
    assert bag.additions == [5.0]


async def test_an_addition_whose_reply_was_lost_in_a_crash_is_not_repeated() -> None:
    # before the crash: the volume was recorded, the vector went in, "done" was lost
    run = FakeRun({"CAR vector: culture volume before": 100.0}, resumed=True)
    bag = FakeBag(105.0)
    assert await add_once(run, bag, VECTOR) is False  # type: ignore[arg-type]
    assert bag.additions == []
    assert run.values["CAR vector: done"] is True


async def test_an_addition_cut_short_by_the_crash_is_made() -> None:
    run = FakeRun({"feed day 3: culture volume before": 400.0}, resumed=True)
    bag = FakeBag(400.0)  # the feed never reached the bag
    assert await feed_once(run, bag, 250.0, key="feed day 3") is True  # type: ignore[arg-type]
    assert bag.additions == [250.0]
