"""A wait on an overlapped operation gives up only when the instrument was seen busy at
enough polls to cover its limit: a loop that stalled (process time jumping ahead on a
sped-up simulated line under load) does not make a healthy instrument look stuck."""

from __future__ import annotations

import pytest

from cellauto.instruments.visa import overdue as module
from cellauto.instruments.visa.overdue import Overdue


def test_a_jump_of_process_time_is_not_a_stuck_instrument(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [0.0]
    monkeypatch.setattr(module.anyio, "current_time", lambda: now[0])
    wait = Overdue(900.0, 5.0)
    now[0] = 5_000.0  # one late poll after a stall
    assert not wait.seen_busy()
    for _ in range(88):
        now[0] += 5.0
        assert not wait.seen_busy()
    now[0] += 5.0
    assert wait.seen_busy()  # busy at 90 polls (half of 900 / 5) and past 900 s: stuck


def test_busy_at_every_poll_gives_up_after_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    monkeypatch.setattr(module.anyio, "current_time", lambda: now[0])
    wait = Overdue(600.0, 2.0)
    polls = 0
    while True:
        now[0] += 2.0
        polls += 1
        if wait.seen_busy():
            break
    assert now[0] == pytest.approx(602.0) and polls == 301
