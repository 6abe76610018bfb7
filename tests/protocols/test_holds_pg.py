"""Shared instruments on PostgreSQL: two controllers' journals, one queue in the database.

Each controller has a Journal of its own on the same PostgreSQL journal (its own pool of
connections); their runs queue for one counter. The queue is the ``asset_holds`` table:
the order, the journaled waits and the max-hold alarm are those of the SQLite tests
(:mod:`tests.protocols.test_holds`), in the same virtual time. A run waiting behind
another process's run is woken by that process's grant (NOTIFY ``cellauto_assets``),
not by its next poll.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from cellauto.clock import awaiting_outside
from cellauto.protocols import State
from cellauto.protocols import holds_local as local
from cellauto.protocols.execution import Execution
from cellauto.protocols.holds import SharedPolicy
from cellauto.protocols.holds_feed import AssetListener
from cellauto.records import Journal
from cellauto.records import asset_holds as table
from cellauto.records import backend as db
from cellauto.records.backend import Conn, Location
from cellauto.records.backend.notify import notify, open_feed
from cellauto.records.payloads import Alarm, InstrumentReleased, InstrumentWaited
from tests.protocols.harness import ORIGIN
from tests.protocols.test_holds import (
    COUNT_S,
    LIMIT_S,
    _execute_all,
    _payloads,
    _runs,
    counting,
    holding_protocol,
)

pytestmark = [pytest.mark.anyio, pytest.mark.postgresql]

RawDb = Callable[[Location], Conn]
REPO = Path(__file__).resolve().parents[2]


async def test_two_controllers_runs_queue_for_one_counter_in_the_database(
    pg_location: Location, raw_db: RawDb
) -> None:
    policy = SharedPolicy("CNT-001")
    with Journal(pg_location) as a, Journal(pg_location) as b:
        (first,), _ = _runs(a, [counting()], policy)
        (second,), _ = _runs(b, [counting(start_after_s=10)], policy)
        seen: list[list[str]] = []

        async def look_at_the_queue() -> None:
            await anyio.sleep(30)  # the first counts (0-90 s), the second waits (since 10 s)
            conn = raw_db(pg_location)
            try:
                seen.append([r.status for r in table.holds(conn, asset="CNT-001")])
            finally:
                conn.close()

        with anyio.fail_after(LIMIT_S):
            async with anyio.create_task_group() as tg:
                tg.start_soon(look_at_the_queue)
                tg.start_soon(first.execute)
                tg.start_soon(second.execute)
        assert first.state is State.COMPLETE and second.state is State.COMPLETE
        assert seen == [["granted", "waiting"]]  # the reservation lives in the database
        assert _payloads(a, first.run_id, InstrumentWaited) == []
        [waited] = _payloads(b, second.run_id, InstrumentWaited)
        assert waited.waited_s == pytest.approx(COUNT_S - 10)
        assert waited.position == 1 and [w.run_id for w in waited.waited_for] == [first.run_id]
        [released] = _payloads(b, second.run_id, InstrumentReleased)
        assert released.held_s == pytest.approx(COUNT_S)
    conn = raw_db(pg_location)
    try:
        rows = table.holds(conn, asset="CNT-001")
    finally:
        conn.close()
    assert [r.status for r in rows] == ["released", "released"]
    assert rows[1].granted_wall_ns == rows[0].released_wall_ns  # granted in the release


async def test_a_controller_whose_clock_runs_ahead_does_not_take_a_live_runs_instrument(
    pg_location: Location, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Heartbeats are written on the server's clock; whether a ticket's run is still
    live is judged on it too, never on this machine's clock (an hour ahead here: a
    live run would look stale and its counter be granted to another run)."""
    ahead_ns = 3600 * 10**9
    real_time_ns = time.time_ns
    policy = SharedPolicy("CNT-001")
    with Journal(pg_location) as a, Journal(pg_location) as b:
        (first,), _ = _runs(a, [counting()], policy)
        (second,), _ = _runs(b, [counting(start_after_s=10)], policy)
        monkeypatch.setattr(time, "time_ns", lambda: real_time_ns() + ahead_ns)
        with anyio.fail_after(LIMIT_S):
            async with anyio.create_task_group() as tg:
                tg.start_soon(first.execute)
                tg.start_soon(second.execute)
        monkeypatch.undo()
        assert first.state is State.COMPLETE and second.state is State.COMPLETE
        [waited] = _payloads(b, second.run_id, InstrumentWaited)
        assert waited.waited_s == pytest.approx(COUNT_S - 10)
        assert [w.run_id for w in waited.waited_for] == [first.run_id]


async def test_a_sample_that_expires_sooner_passes_another_controllers_run(
    pg_location: Location,
) -> None:
    policy = SharedPolicy("CNT-001")
    with Journal(pg_location) as a, Journal(pg_location) as b:
        (holder, urgent), _ = _runs(
            a, [counting(), counting(start_after_s=20, expires_in_min=15)], policy
        )
        (plain,), _ = _runs(b, [counting(start_after_s=10)], policy)
        await _execute_all([holder, plain, urgent])
        [plain_wait] = _payloads(b, plain.run_id, InstrumentWaited)
        [urgent_wait] = _payloads(a, urgent.run_id, InstrumentWaited)
    assert urgent_wait.granted_process_time_s < plain_wait.granted_process_time_s
    assert urgent_wait.waited_s == pytest.approx(COUNT_S - 20)
    assert plain_wait.waited_s == pytest.approx(2 * COUNT_S - 10)
    assert [w.run_id for w in plain_wait.waited_for] == [holder.run_id]


async def test_a_hold_past_its_maximum_alarms_and_the_other_controllers_wait_says_so(
    pg_location: Location,
) -> None:
    policy = SharedPolicy("CNT-001")
    with Journal(pg_location) as a, Journal(pg_location) as b:
        (slow,), _ = _runs(a, [holding_protocol(hold_s=600, max_hold_s=300)], policy)
        (waiter,), _ = _runs(b, [counting(start_after_s=5)], policy)
        await _execute_all([slow, waiter])
        [alarm] = _payloads(a, slow.run_id, Alarm)
        alarm_record = next(r for r in a.records(slow.run_id) if isinstance(r.payload, Alarm))
        [released] = _payloads(a, slow.run_id, InstrumentReleased)
        [waited] = _payloads(b, waiter.run_id, InstrumentWaited)
    assert alarm.severity == "major" and "maximum of 300 s" in alarm.message
    assert alarm_record.process_time_s == pytest.approx(ORIGIN.timestamp() + 300)
    assert released.overdue and released.held_s == pytest.approx(600)
    assert waited.waited_s == pytest.approx(595)
    assert [(w.run_id, w.overdue) for w in waited.waited_for] == [(slow.run_id, True)]


def _other_controller_holds(conn: Conn, asset: str) -> None:
    """Another controller (another host) holds ``asset``: its run's claim and its ticket."""
    now = time.time_ns()
    db.begin_write(conn)
    conn.execute(
        "INSERT INTO run_owners VALUES ('other-run', 1, 'other-host', 1, NULL, ?, ?, NULL, NULL)",
        (now, now),
    )
    conn.execute(
        "INSERT INTO asset_holds (ticket, asset, run_id, epoch, controller, purpose,"
        " priority, capacity, patience_ns, requested_wall_ns, granted_wall_ns, status)"
        " VALUES ('other-run:1:1', ?, 'other-run', 1, 'other-host:1', 'count', 0, 1, 1, 0, 0,"
        " 'granted')",
        (asset,),
    )
    conn.execute("COMMIT")


async def _listening_before_it_asks(
    run: Execution, monkeypatch: pytest.MonkeyPatch
) -> tuple[local.Wakeups, anyio.Event]:
    """This process listens before ``run`` asks (nothing but a notification can end its
    wait before its poll); the event is set once its request is committed."""
    wakeups = local.wakeups(run)
    assert wakeups.listener is not None
    wakeups.asking["(the test)"] += 1  # keeps the listener while nobody waits yet
    ready = wakeups.listener.start(asyncio.get_running_loop())
    await anyio.to_thread.run_sync(ready.wait)
    asked = anyio.Event()
    in_commit = local.in_commit

    async def request_then_tell(*args: Any) -> Any:
        value = await in_commit(*args)
        asked.set()
        return value

    monkeypatch.setattr(local, "in_commit", request_then_tell)
    return wakeups, asked


async def test_a_run_waiting_for_another_process_is_woken_by_its_release_not_by_polling(
    pg_location: Location, raw_db: RawDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other controller's release grants the waiter in its own commit; the NOTIFY of
    that commit wakes the waiter here at once (its poll would come after an hour)."""
    conn = raw_db(pg_location)
    feed = open_feed(pg_location, ["cellauto_assets"])
    try:
        _other_controller_holds(conn, "CNT-001")
        policy = SharedPolicy("CNT-001", poll_s=3600)
        with Journal(pg_location) as journal:
            (run,), _ = _runs(journal, [counting()], policy)
            wakeups, asked = await _listening_before_it_asks(run, monkeypatch)

            async def other_controller_releases() -> None:
                await asked.wait()
                assert [r.status for r in table.holds(conn, run_id=run.run_id)] == ["waiting"]
                db.begin_write(conn, db.Lock.ASSET)
                alive = table.owner_liveness(conn, pg_location, stale_s=30)
                outcome = table.release(conn, "other-run:1:1", time.time_ns(), alive)
                conn.execute("COMMIT")
                assert len(outcome.woken) == 1

            # a hang guard only: woken by the notification, the run ends in milliseconds
            with anyio.fail_after(600):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(other_controller_releases)
                    tg.start_soon(run.execute)
            del wakeups.asking["(the test)"]
            assert run.state is State.COMPLETE
            [waited] = _payloads(journal, run.run_id, InstrumentWaited)
            assert waited.waited_s < policy.poll_s
            assert [w.run_id for w in waited.waited_for] == ["other-run"]
            assert waited.ticket in wakeups.listener.delivered
        assert feed.wait(0) is not None  # the grant was announced to every listener
        assert any(payload == f"granted {waited.ticket}" for _, payload in feed.payloads)
    finally:
        feed.close()
        conn.close()


def _other_controller(url: str, asset: str) -> subprocess.Popen[str]:
    """Another controller process whose run holds ``asset`` until told to let go."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.protocols.holds_other_controller", url, asset],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip


async def test_a_run_waits_for_another_controller_process_and_is_woken_by_its_release(
    pg_location: Location, raw_db: RawDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes, two controllers: the other process's run holds the counter; this
    process's run waits for it (the wait journaled, naming that run) and is woken by the
    NOTIFY of the other process's release (its own poll would come after an hour)."""
    assert pg_location.url is not None
    other = _other_controller(pg_location.url, "CNT-001")
    assert other.stdin is not None and other.stdout is not None
    try:
        with awaiting_outside():  # a real process: virtual time follows real time
            line = await anyio.to_thread.run_sync(other.stdout.readline)
        assert line.startswith("holding "), line
        _, other_run, other_ticket = line.split()
        policy = SharedPolicy("CNT-001", poll_s=3600)
        with Journal(pg_location) as journal:
            (run,), _ = _runs(journal, [counting()], policy)
            wakeups, asked = await _listening_before_it_asks(run, monkeypatch)

            async def tell_the_other_to_let_go() -> None:
                await asked.wait()
                assert other.stdin is not None
                other.stdin.write("let go\n")
                other.stdin.flush()

            with anyio.fail_after(600):  # a hang guard only
                async with anyio.create_task_group() as tg:
                    tg.start_soon(tell_the_other_to_let_go)
                    tg.start_soon(run.execute)
            del wakeups.asking["(the test)"]
            assert run.state is State.COMPLETE
            [waited] = _payloads(journal, run.run_id, InstrumentWaited)
            assert waited.waited_s < policy.poll_s
            assert waited.position == 1 and [w.run_id for w in waited.waited_for] == [other_run]
            assert waited.ticket in wakeups.listener.delivered
        with awaiting_outside():
            rest = await anyio.to_thread.run_sync(other.communicate)
        assert rest[0].strip() == "released" and other.returncode == 0
    finally:
        if other.poll() is None:
            other.kill()
            other.wait()
    conn = raw_db(pg_location)
    try:
        rows = {r.ticket: r for r in table.holds(conn, asset="CNT-001")}
    finally:
        conn.close()
    assert rows[other_ticket].status == "released" and rows[waited.ticket].status == "released"
    assert rows[waited.ticket].granted_wall_ns == rows[other_ticket].released_wall_ns


async def test_the_listener_passes_grants_on_ends_when_nobody_waits_and_starts_again(
    pg_location: Location, raw_db: RawDb
) -> None:
    woken: list[list[str] | None] = []
    heard = anyio.Event()
    waiting = [True]

    def wake(tickets: list[str] | None) -> None:
        woken.append(tickets)
        heard.set()

    listener = AssetListener(pg_location, lambda: waiting[0], wake)
    loop = asyncio.get_running_loop()
    await anyio.to_thread.run_sync(listener.start(loop).wait)
    assert listener.listening()
    conn = raw_db(pg_location)
    try:
        db.begin_write(conn)
        notify(conn, "cellauto_assets", "queued run-a:1:2")  # not a grant: not passed on
        notify(conn, "cellauto_assets", table.granted_payload("run-a:1:1"))
        conn.execute("COMMIT")
    finally:
        conn.close()
    with anyio.fail_after(60), awaiting_outside():  # a hang guard only
        await heard.wait()
    assert woken == [["run-a:1:1"]] and list(listener.delivered) == ["run-a:1:1"]
    waiting[0] = False  # nobody waits: the thread ends at its next quiet wait
    thread = listener._thread
    assert thread is not None
    with awaiting_outside():
        await anyio.to_thread.run_sync(thread.join)
    assert not listener.listening()
    waiting[0] = True  # a run waits again: a new thread listens
    await anyio.to_thread.run_sync(listener.start(loop).wait)
    assert listener.listening() and listener._thread is not thread
    waiting[0] = False
