"""Shared instruments: runs wait for one counter in a fair queue; waits are journaled."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import pytest

from cellauto import Protocol, Run
from cellauto.instruments import Instrument, InstrumentIdentity, Line, command, query
from cellauto.instruments.materials import Sample
from cellauto.protocols import Command, Runner, State
from cellauto.protocols.execution import Execution
from cellauto.protocols.holds import SharedPolicy, share
from cellauto.records import Journal
from cellauto.records import asset_holds as table
from cellauto.records import backend as db
from cellauto.records.backend import Conn, Location
from cellauto.records.backend.pg import PgBackend
from cellauto.records.payloads import (
    Alarm,
    InstrumentCommand,
    InstrumentReleased,
    InstrumentWaited,
    Payload,
)
from cellauto.records.wording import describe_io
from tests.protocols.harness import ORIGIN

pytestmark = pytest.mark.anyio

COUNT_S = 90.0


class Meter(Instrument):
    """A counter: each count takes 90 s; one query."""

    interface_name = "Meter"

    def __init__(self, serial: str = "M-1") -> None:
        super().__init__(InstrumentIdentity(vendor="test", model="M1", serial=serial, firmware="1"))
        self.counted: list[str] = []

    @command
    async def count(self, sample: Sample | None = None, label: str = "") -> int:
        await anyio.sleep(COUNT_S)
        self.counted.append(label)
        return len(self.counted)

    @query
    async def status(self) -> str:
        return "idle"


def _sample(run: Run[Any], minutes: float | None) -> Sample | None:
    if minutes is None:
        return None
    drawn = run.now().timestamp()
    # a stability of 60 min (the policy's): expiry = drawn + 60 min; shift the draw back
    return Sample(
        sample_id=f"{run.run_id}-s",
        source_container_id="bag",
        volume_ml=1.0,
        drawn_at_process_time_s=drawn - 3600 + minutes * 60,
    )


def counting(
    start_after_s: float = 0.0, expires_in_min: float | None = None, counts: int = 1
) -> Protocol:
    protocol = Protocol("shared-count", version="1")

    @protocol.step
    async def measure(run: Run, meter: Meter) -> None:
        await anyio.sleep(start_after_s)
        for i in range(counts):
            await meter.count(_sample(run, expires_in_min), label=f"{run.run_id}:{i}")

    return protocol


def _runs(
    journal: Journal,
    protocols: list[Protocol],
    policy: SharedPolicy | None,
) -> tuple[list[Execution], list[Meter]]:
    runner = Runner(journal, clock_origin=ORIGIN)
    executions, meters = [], []
    for i, protocol in enumerate(protocols):
        meter = Meter(f"M-{i}")  # each run's handle; one physical asset when shared
        if policy is not None:
            share(meter, policy)
        meters.append(meter)
        executions.append(runner.prepare(protocol, Line(f"line-{i}", {"meter": meter})))
    return executions, meters


LIMIT_S = 4 * 3600.0
"""Virtual seconds after which a test's runs count as stuck (fail_after: no hang)."""


async def _execute_all(executions: list[Execution]) -> None:
    with anyio.fail_after(LIMIT_S):
        await _execute_all_unbounded(executions)


async def _execute_all_unbounded(executions: list[Execution]) -> None:
    async with anyio.create_task_group() as tg:
        for execution in executions:
            tg.start_soon(execution.execute)


def _payloads(journal: Journal, run_id: str, kind: type[Payload]) -> list[Any]:
    return [r.payload for r in journal.records(run_id) if isinstance(r.payload, kind)]


@pytest.fixture
def journal(db_location: Location) -> Iterator[Journal]:
    """A journal on the backend of the pass (``--db-backend``)."""
    with Journal(db_location) as opened:
        yield opened


@contextmanager
def _conn(journal: Journal) -> Iterator[Conn]:
    """A plain connection to the journal's database (autocommit), closed after the block."""
    location = journal.location
    conn: Conn
    if location.url is not None:
        conn = PgBackend(location.url).connect_writer(timeout_s=5.0)
    else:
        conn = sqlite3.connect(location.sqlite_path(), isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


async def test_a_second_run_waits_for_the_shared_counter_and_the_wait_is_journaled(
    journal: Journal,
) -> None:
    policy = SharedPolicy("CNT-001")
    (first, second), _ = _runs(journal, [counting(), counting(start_after_s=10)], policy)
    await _execute_all([first, second])
    assert first.state is State.COMPLETE and second.state is State.COMPLETE
    assert _payloads(journal, first.run_id, InstrumentWaited) == []
    [waited] = _payloads(journal, second.run_id, InstrumentWaited)
    assert waited.asset == "CNT-001" and waited.instrument == "meter"
    assert waited.waited_s == pytest.approx(COUNT_S - 10)
    assert waited.position == 1
    assert [w.run_id for w in waited.waited_for] == [first.run_id]
    [released] = _payloads(journal, second.run_id, InstrumentReleased)
    assert released.held_s == pytest.approx(COUNT_S) and not released.overdue
    # the intent of the count is journaled after the wait, never before
    kinds = [type(r.payload) for r in journal.records(second.run_id)]
    assert kinds.index(InstrumentWaited) < kinds.index(InstrumentCommand)
    with _conn(journal) as conn:
        rows = table.holds(conn, asset="CNT-001")
    assert [r.status for r in rows] == ["released", "released"]
    assert rows[1].granted_wall_ns == rows[0].released_wall_ns  # granted in the release


async def test_dedicated_counters_do_not_wait(journal: Journal) -> None:
    executions, _ = _runs(journal, [counting(), counting(start_after_s=10)], None)
    await _execute_all(executions)
    for execution in executions:
        assert _payloads(journal, execution.run_id, InstrumentWaited) == []
    with _conn(journal) as conn:
        assert table.holds(conn) == []


async def test_a_sample_that_expires_sooner_is_counted_first(journal: Journal) -> None:
    policy = SharedPolicy("CNT-001")
    protocols = [
        counting(),  # holds the counter from t=0 to 90 s
        counting(start_after_s=10),  # no sample: waits from t=10
        counting(start_after_s=20, expires_in_min=15),  # its sample expires at t=20+15 min
    ]
    (holder, plain, urgent), _ = _runs(journal, protocols, policy)
    await _execute_all([holder, plain, urgent])
    [plain_wait] = _payloads(journal, plain.run_id, InstrumentWaited)
    [urgent_wait] = _payloads(journal, urgent.run_id, InstrumentWaited)
    assert urgent_wait.granted_process_time_s < plain_wait.granted_process_time_s
    assert urgent_wait.waited_s == pytest.approx(COUNT_S - 20)
    assert plain_wait.waited_s == pytest.approx(2 * COUNT_S - 10)
    assert urgent_wait.deadline_process_time_s == pytest.approx(ORIGIN.timestamp() + 20 + 900)


async def test_capacity_two_serves_two_at_once(journal: Journal) -> None:
    policy = SharedPolicy("CNT-002", capacity=2)
    executions, _ = _runs(journal, [counting(), counting(), counting(start_after_s=1)], policy)
    await _execute_all(executions)
    waits = [_payloads(journal, e.run_id, InstrumentWaited) for e in executions]
    assert [len(w) for w in waits] == [0, 0, 1]
    assert waits[2][0].waited_s == pytest.approx(COUNT_S - 1)


def holding_protocol(hold_s: float, max_hold_s: float) -> Protocol:
    protocol = Protocol("explicit-hold", version="1")

    @protocol.step
    async def sequence(run: Run, meter: Meter) -> None:
        async with run.hold(meter, max_hold_s=max_hold_s) as held:
            assert held is not None
            await meter.count(label="a")
            await meter.status()
            await anyio.sleep(hold_s - COUNT_S)

    return protocol


async def test_an_explicit_hold_covers_its_calls_and_alarms_past_its_maximum(
    journal: Journal,
) -> None:
    policy = SharedPolicy("CNT-001")
    (slow, waiter), _ = _runs(
        journal, [holding_protocol(hold_s=600, max_hold_s=300), counting(start_after_s=5)], policy
    )
    await _execute_all([slow, waiter])
    [alarm] = _payloads(journal, slow.run_id, Alarm)
    assert alarm.severity == "major" and "maximum of 300 s" in alarm.message
    alarm_record = next(r for r in journal.records(slow.run_id) if isinstance(r.payload, Alarm))
    assert alarm_record.process_time_s == pytest.approx(ORIGIN.timestamp() + 300)
    [released] = _payloads(journal, slow.run_id, InstrumentReleased)
    assert released.overdue and released.held_s == pytest.approx(600)
    [waited] = _payloads(journal, waiter.run_id, InstrumentWaited)
    assert waited.waited_s == pytest.approx(595)
    assert [(w.run_id, w.overdue) for w in waited.waited_for] == [(slow.run_id, True)]
    with _conn(journal) as conn:  # one ticket for the sequence: its calls took none
        assert len(table.holds(conn, run_id=slow.run_id)) == 1


async def test_an_explicit_hold_within_its_maximum_raises_no_alarm(journal: Journal) -> None:
    (run,), _ = _runs(journal, [holding_protocol(hold_s=200, max_hold_s=300)], SharedPolicy("C"))
    await _execute_all([run])
    assert run.state is State.COMPLETE
    assert _payloads(journal, run.run_id, Alarm) == []
    [released] = _payloads(journal, run.run_id, InstrumentReleased)
    assert not released.overdue and released.held_s == pytest.approx(200)


def _foreign_hold(
    journal: Journal,
    *,
    host: str,
    released: bool,
    asset: str = "CNT-001",
    status: str = "granted",
    deadline_ns: int | None = None,
) -> None:
    """A run of another controller holding (or waiting for) ``asset``: its owner row and
    its ticket."""
    now = time.time_ns()
    with _conn(journal) as conn:
        db.begin_write(conn, db.Lock.ASSET)
        conn.execute(
            "INSERT INTO run_owners VALUES ('other-run', 1, ?, 1, NULL, ?, ?, ?, NULL)",
            (host, now, now, now if released else None),
        )
        conn.execute(
            "INSERT INTO asset_holds (ticket, asset, run_id, epoch, controller, purpose,"
            " priority, capacity, patience_ns, deadline_wall_ns, requested_wall_ns,"
            " granted_wall_ns, status)"
            " VALUES ('other-run:1:1', ?, 'other-run', 1, ?, 'count', 0, 1, 1, ?, 0, ?, ?)",
            (asset, f"{host}:1", deadline_ns, 0 if status == "granted" else None, status),
        )
        conn.execute("COMMIT")


async def test_a_dead_holders_hold_is_released_at_the_next_request(journal: Journal) -> None:
    _foreign_hold(journal, host="gone-host", released=True)  # its run was let go
    (run,), _ = _runs(journal, [counting()], SharedPolicy("CNT-001"))
    await _execute_all([run])
    assert run.state is State.COMPLETE
    assert _payloads(journal, run.run_id, InstrumentWaited) == []
    with _conn(journal) as conn:
        [dead] = table.holds(conn, run_id="other-run")
    assert dead.status == "released" and dead.note is not None


@pytest.mark.sqlite_only  # on PostgreSQL the release is notified: test_holds_pg
async def test_a_run_waiting_for_another_controller_polls_until_it_lets_go(
    journal: Journal,
) -> None:
    _foreign_hold(journal, host="other-host", released=False)  # live: fresh heartbeat
    policy = SharedPolicy("CNT-001", poll_s=30)
    (run,), _ = _runs(journal, [counting()], policy)

    async def other_controller_releases() -> None:
        await anyio.sleep(100)
        with _conn(journal) as conn:
            conn.execute(
                "UPDATE asset_holds SET status = 'released', released_wall_ns = 1"
                " WHERE ticket = 'other-run:1:1'"
            )

    with anyio.fail_after(LIMIT_S):
        async with anyio.create_task_group() as tg:
            tg.start_soon(other_controller_releases)
            tg.start_soon(run.execute)
    [waited] = _payloads(journal, run.run_id, InstrumentWaited)
    assert waited.waited_s == pytest.approx(120)  # the first poll after 100 s
    assert [w.run_id for w in waited.waited_for] == ["other-run"]


async def test_a_request_cancelled_while_waiting_is_withdrawn(journal: Journal) -> None:
    policy = SharedPolicy("CNT-001")
    (holder, waiter), _ = _runs(journal, [counting(), counting(start_after_s=1)], policy)
    async with anyio.create_task_group() as tg:
        tg.start_soon(holder.execute)
        tg.start_soon(waiter.execute)
        await anyio.sleep(30)
        with _conn(journal) as conn:
            assert [r.status for r in table.holds(conn)] == ["granted", "waiting"]
        waiter.command(Command.ABORT, by="test", reason="cancel the wait")
    with _conn(journal) as conn:
        statuses = {r.run_id: r.status for r in table.holds(conn)}
    assert statuses == {holder.run_id: "released", waiter.run_id: "cancelled"}


@pytest.mark.sqlite_only  # on PostgreSQL the grant is notified: test_holds_pg
async def test_a_grant_made_by_another_controllers_commit_is_found_by_polling(
    journal: Journal,
) -> None:
    """A waits behind a local holder; another controller's urgent request passes it, is
    granted by the local release, and its own release grants A in its process: A learns
    of it at its next poll, without anyone in this process waking it."""
    policy = SharedPolicy("CNT-001", poll_s=30)
    (holder, waiter), _ = _runs(journal, [counting(), counting(start_after_s=10)], policy)

    async def other_controller() -> None:
        await anyio.sleep(20)
        urgent = round((ORIGIN.timestamp() + 60) * 1e9)
        _foreign_hold(journal, host="other-host", released=False, status="waiting",
                      deadline_ns=urgent)  # fmt: skip
        await anyio.sleep(180)  # t = 200: it is done, and its release grants the waiter
        with _conn(journal) as conn:
            statuses = {r.run_id: r.status for r in table.holds(conn)}
            assert statuses == {
                holder.run_id: "released",
                "other-run": "granted",
                waiter.run_id: "waiting",
            }
            conn.execute(
                "UPDATE asset_holds SET status = 'released' WHERE ticket = 'other-run:1:1'"
            )
            conn.execute(
                "UPDATE asset_holds SET status = 'granted', granted_wall_ns = ? WHERE run_id = ?",
                (round((ORIGIN.timestamp() + 200) * 1e9), waiter.run_id),
            )

    with anyio.fail_after(LIMIT_S):
        async with anyio.create_task_group() as tg:
            tg.start_soon(other_controller)
            tg.start_soon(holder.execute)
            tg.start_soon(waiter.execute)
    assert waiter.state is State.COMPLETE
    [waited] = _payloads(journal, waiter.run_id, InstrumentWaited)
    assert waited.waited_s == pytest.approx(210)  # polls at 40, 70, ... 220 s
    assert [w.run_id for w in waited.waited_for] == [holder.run_id]


async def test_the_batch_record_io_lines_name_the_wait(journal: Journal) -> None:
    policy = SharedPolicy("CNT-001")
    (first, second), _ = _runs(journal, [counting(), counting(start_after_s=10)], policy)
    await _execute_all([first, second])
    lines = [
        describe_io(r)
        for r in journal.records(second.run_id)
        if isinstance(r.payload, InstrumentWaited | InstrumentReleased)
    ]
    assert lines == [
        f"  … waited 1m20s for meter (CNT-001) behind {first.run_id[:12]}",
        "  … released meter (CNT-001) after 1m30s",
    ]


async def test_a_run_held_while_it_waits_lets_go_of_the_instrument_when_granted(
    journal: Journal,
) -> None:
    """No instrument is kept by a held run: granted while Holding, the command lets go at
    once, the run becomes Held, and on Restart it queues again."""
    policy = SharedPolicy("CNT-001")
    (holder, waiter), meters = _runs(journal, [counting(), counting(start_after_s=10)], policy)
    with anyio.fail_after(LIMIT_S):
        async with anyio.create_task_group() as tg:
            tg.start_soon(holder.execute)
            tg.start_soon(waiter.execute)
            await anyio.sleep(30)  # the waiter waits for the counter since t = 10
            waiter.command(Command.HOLD, by="test", reason="operator check")
            await anyio.sleep(100)  # t = 130: the holder let go at 90
            assert waiter.state is State.HELD
            with _conn(journal) as conn:
                statuses = [r.status for r in table.holds(conn, run_id=waiter.run_id)]
            assert statuses == ["released"]  # granted at 90, let go at once
            assert meters[1].counted == []  # nothing counted while held
            waiter.command(Command.RESTART, by="test", reason="checked")
    assert waiter.state is State.COMPLETE
    assert len(meters[1].counted) == 1
    with _conn(journal) as conn:
        rows = table.holds(conn, run_id=waiter.run_id)
    assert [r.status for r in rows] == ["released", "released"]
    assert rows[1].requested_wall_ns == round((ORIGIN.timestamp() + 130) * 1e9)
