"""Edges of a run found in review: late commands, odd failures, nothing before start."""

from __future__ import annotations

import contextlib
import sqlite3
import sys
from pathlib import Path

import anyio
import pytest

from cellauto import Protocol, Run
from cellauto.errors import StateCommandError
from cellauto.instruments import Line, command
from cellauto.protocols import Runner, State
from cellauto.records import Journal, RecordKind, _sqlite
from tests.protocols.harness import ORIGIN, Valve
from tests.raw_sql import raw_connect
from tests.records.factory import payload_of

pytestmark = pytest.mark.anyio

CONSISTENT = {"complete": State.COMPLETE, "stopped": State.STOPPED, "aborted": State.ABORTED}


@pytest.mark.parametrize("command", ["Hold", "Stop", "Abort"])
async def test_a_command_as_the_run_finishes_never_contradicts_the_outcome(
    journal: Journal, command: str
) -> None:
    last_step_done = anyio.Event()
    protocol = Protocol("late", version="1")

    @protocol.step
    async def only(run: Run) -> None:
        last_step_done.set()

    ex = Runner(journal, clock_origin=ORIGIN).prepare(protocol, Line("t", {}))
    results = []

    async def late_operator() -> None:
        await last_step_done.wait()
        with contextlib.suppress(StateCommandError):
            ex.command(command, by="operator")
        if ex.state is State.HELD:  # the hold landed in time: let the run finish
            ex.command("Abort", by="operator")

    async def execute() -> None:
        results.append(await ex.execute())

    async with anyio.create_task_group() as tg:
        tg.start_soon(execute)
        tg.start_soon(late_operator)
    (outcome,) = results
    assert CONSISTENT[outcome.exit_status] is outcome.state is ex.state
    ended = next(r for r in journal.records(ex.run_id) if r.kind == "run_ended")
    assert CONSISTENT[ended.payload.exit_status].value == ended.payload.final_state


async def test_sys_exit_in_a_step_fails_that_run_only(journal: Journal) -> None:
    bad = Protocol("bad", version="1")

    @bad.step
    async def quits(run: Run) -> None:
        sys.exit(3)

    good = Protocol("good", version="1")

    @good.step
    async def waits(run: Run) -> None:
        await run.sleep(hours=2)

    runner = Runner(journal, clock_origin=ORIGIN)
    outcomes = {}

    async def one(protocol: Protocol) -> None:
        outcomes[protocol.name] = await runner.run(protocol, Line("t", {}))

    async with anyio.create_task_group() as tg:
        tg.start_soon(one, bad)
        tg.start_soon(one, good)
    assert outcomes["bad"].exit_status == "failed" and "SystemExit" in outcomes["bad"].reason
    assert outcomes["good"].exit_status == "complete"


async def test_a_command_before_the_run_starts_writes_nothing(journal: Journal) -> None:
    protocol = Protocol("p", version="1")

    @protocol.step
    async def only(run: Run) -> None:
        pass

    ex = Runner(journal, clock_origin=ORIGIN).prepare(protocol, Line("t", {}))
    with pytest.raises(StateCommandError, match="'Hold' is not allowed in state 'Idle'"):
        ex.command("Hold", by="operator")
    assert journal.runs() == []
    outcome = await ex.execute()
    assert journal.records(ex.run_id)[0].kind == "run_started"
    assert outcome.exit_status == "complete"


@pytest.mark.sqlite_only
async def test_durable_records_are_committed_with_fsync(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The intent of a physical action is committed under synchronous=FULL (writer thread)."""
    statements: list[str] = []
    connect = _sqlite.connect_writer

    class Spy:
        def __init__(self, real: sqlite3.Connection) -> None:
            self._real = real

        def __getattr__(self, name: str) -> object:
            return getattr(self._real, name)

        def execute(self, sql: str, *args: object) -> object:
            statements.append(sql)
            return self._real.execute(sql, *args)

    monkeypatch.setattr(_sqlite, "connect_writer", lambda *a, **k: Spy(connect(*a, **k)))
    run = journal.begin_run("r", lambda: 0.0)
    run.append(payload_of(RecordKind.READING, {"x": 1}))
    await run.append_durable(payload_of(RecordKind.INSTRUMENT_COMMAND, {"method": "open"}))
    full = statements.index("PRAGMA synchronous=FULL")
    normal = statements.index("PRAGMA synchronous=NORMAL", full)
    # the run's begun entry rides along: the write lock is taken first (other writers)
    assert statements[full + 1] == "BEGIN IMMEDIATE" and statements[normal - 1] == "COMMIT"
    # between them only the ledger (the run's begun entry, signed) besides the records,
    # and the fence's read of the run's owner (its claim's epoch)
    between = statements[full + 2 : normal - 1]
    assert all("ledger" in s or "meta" in s or "run_owners" in s for s in between)


async def test_a_command_is_sent_only_once_its_intent_is_on_disk(
    journal: Journal, tmp_path: Path
) -> None:
    """The instrument sees its command only after the intent was committed with an fsync."""
    seen: list[tuple[int, int]] = []

    class CheckingValve(Valve):
        @command
        async def open(self) -> int:
            conn = raw_connect(journal.location)  # what a crash now would leave
            try:
                (intents,) = conn.execute(
                    "SELECT count(*) FROM records WHERE kind = 'instrument_command'"
                ).fetchone()
            finally:
                conn.close()
            assert journal._writer is not None
            seen.append((intents, journal._writer.fsyncs))
            return 1

    protocol = Protocol("intent", version="1")

    @protocol.step
    async def work(run: Run, valve: Valve) -> None:
        await valve.open()
        await valve.open()

    line = Line("t", {"valve": CheckingValve()})
    outcome = await Runner(journal, clock_origin=ORIGIN).prepare(protocol, line).execute()
    assert outcome.exit_status == "complete"
    assert [intents for intents, _ in seen] == [1, 2]
    assert seen[0][1] >= 2 and seen[1][1] > seen[0][1]  # run_started, then each intent
