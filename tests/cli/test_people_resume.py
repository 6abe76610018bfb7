"""``cellauto resume`` of a run answered by people: its open task gets its row again, and
an answer given from another terminal while the controller was down is taken up."""

from __future__ import annotations

import anyio
import pytest

from cellauto import Protocol, Run
from cellauto.errors import JournalError
from cellauto.instruments import Line
from cellauto.protocols import Runner
from cellauto.protocols.execution import Execution, RunOutcome
from cellauto.protocols.inbox import PeopleInbox
from cellauto.records import Journal
from cellauto.records import payloads as rec
from tests.cli.across import all_rows, answer, in_thread, records, staffed_people, task_rows, until
from tests.cli.people import People, people
from tests.protocols.harness import ORIGIN, Valve

__all__ = ["people", "staffed_people"]  # fixtures


def _protocol() -> Protocol:
    protocol = Protocol("people", version="1")

    @protocol.step(resume="rerun")
    async def connect(run: Run, valve: Valve) -> None:
        await run.confirm("connect bag", instruction="Weld the bag to the set.")
        await valve.open()

    return protocol


@pytest.mark.anyio
async def test_answer_given_while_the_controller_was_down_is_taken_up(
    staffed_people: People,
) -> None:
    db = staffed_people.db
    line = Line("bench", {"valve": Valve()})
    journal = Journal(db)
    inbox = PeopleInbox(journal)
    first = Runner(journal, clock_origin=ORIGIN).prepare(
        _protocol(), line, answerers=[inbox], authority=inbox.authority()
    )
    inbox.register(first)

    async def crashing(execution: Execution) -> None:
        try:
            await execution.execute()
        except* JournalError:  # the dying run cannot write any more
            pass

    async with anyio.create_task_group() as group:
        group.start_soon(inbox.run)
        group.start_soon(crashing, first)
        await until(lambda: task_rows(db) != [])
        journal.abandon()  # the controller dies with the task open
        group.cancel_scope.cancel()
    inbox.close()
    (row,) = task_rows(db)
    given = await in_thread(answer, db, "alice", row.task_id)  # nobody listens now

    journal = Journal(db)
    inbox = PeopleInbox(journal)
    resumed = Runner(journal, clock_origin=ORIGIN).resume(
        _protocol(), line, first.run_id, clock=first.clock, answerers=[inbox],
        authority=inbox.authority(),
    )  # fmt: skip
    inbox.register(resumed)
    outcome: list[RunOutcome] = []

    async def execute() -> None:
        outcome.append(await resumed.execute())
        resumed.close()

    async with anyio.create_task_group() as group:
        group.start_soon(inbox.run)
        group.start_soon(execute)
        await until(lambda: outcome != [])
        group.cancel_scope.cancel()
    inbox.close()
    journal.close()
    assert outcome[0].exit_status == "complete", outcome[0].reason
    (answered,) = [p for p in records(db, first.run_id) if isinstance(p, rec.TaskAnswered)]
    assert answered.signature.signer == "alice"
    assert answered.signature.site is not None
    assert answered.signature.site.seq == given.signature.seq
    assert [r.status for r in all_rows(db)] == ["closed"]
