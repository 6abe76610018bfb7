"""``cellauto hold|restart|stop|abort``: signed commands to a running batch from another
terminal, applied or refused (journaled in the run) by its controller (abuse case 18)."""

from __future__ import annotations

from typing import Any

import pytest

from cellauto.protocols import Command, State
from cellauto.records import payloads as rec
from cellauto.records.refs import Meaning
from cellauto.records.task_rows import read_request
from cellauto.site.history import reading_journal
from tests.cli.across import (
    Controller,
    answer,
    finish,
    in_thread,
    records,
    refusals,
    staffed_people,
    two_steps,
    until,
)
from tests.cli.people import People, own, people

__all__ = ["people", "staffed_people"]  # fixtures


def _command(people: People, verb: str, run_id: str, who: str, *extra: object) -> Any:
    return people(
        verb, run_id, "--as", who, "--reason", f"{verb} by {who}", *extra, stdin=[own(who)]
    )


def _commands(db: Any, run_id: str) -> list[rec.Command]:
    return [p for p in records(db, run_id) if isinstance(p, rec.Command) and p.request]


@pytest.mark.anyio
async def test_hold_and_restart_from_another_terminal(staffed_people: People) -> None:
    people = staffed_people
    c = Controller(people.db, two_steps())
    seen: dict[str, Any] = {}

    async def script(c: Controller) -> None:
        await c.open_task("perform", "connect bag")
        seen["stop"] = await in_thread(_command, people, "stop", c.run_id, "alice")
        seen["hold"] = await in_thread(_command, people, "hold", c.run_id, "quinn")
        await until(lambda: c.execution.state is State.HELD)
        seen["restart"] = await in_thread(_command, people, "restart", c.run_id, "carol")
        await finish(c)

    outcome = await c.drive(script)
    assert outcome.exit_status == "complete", outcome.reason
    assert seen["stop"].code == 2 and "run.stop" in seen["stop"].err  # an operator may not
    assert refusals(people.db)[-1].cause == "permission"
    assert seen["hold"].code == 0 and "hold applied" in seen["hold"].out
    assert seen["restart"].code == 0, seen["restart"].out
    hold, restart = _commands(people.db, c.run_id)
    assert (hold.command, hold.accepted, hold.by) == ("Hold", True, "quinn")
    assert hold.signature is not None and hold.signature.signer == "quinn"
    assert hold.signature.site is not None and hold.request is not None
    assert (restart.command, restart.accepted) == ("Restart", True)
    with reading_journal(people.db) as conn:
        statuses = [r[0] for r in conn.execute("SELECT status FROM run_requests ORDER BY site_seq")]
    assert statuses == ["applied", "applied"]
    verified = people("verify")
    assert verified.code == 0, verified.out + verified.err


@pytest.mark.anyio
async def test_restart_after_deviation_needs_supervisor(staffed_people: People) -> None:
    people = staffed_people
    db = people.db
    c = Controller(db, two_steps())
    seen: dict[str, Any] = {}

    async def script(c: Controller) -> None:
        row = await c.open_task("perform", "connect bag")
        await in_thread(answer, db, "alice", row.task_id)
        row = await c.open_task("perform", "bag weight")
        await in_thread(answer, db, "alice", row.task_id, value=95)  # out of spec: a deviation
        row = await c.open_task("verify", "bag weight")
        await in_thread(answer, db, "bob", row.task_id)
        await until(lambda: c.execution.state is State.HELD)
        seen["alice"] = await in_thread(_command, people, "restart", c.run_id, "alice")
        assert c.execution.state is State.HELD
        seen["carol"] = await in_thread(_command, people, "restart", c.run_id, "carol")

    outcome = await c.drive(script)
    assert outcome.exit_status == "complete", outcome.reason
    assert seen["alice"].code == 2 and "approved" in seen["alice"].out
    assert seen["carol"].code == 0 and "with approval of the deviation" in seen["carol"].out
    refused, applied = _commands(db, c.run_id)
    assert (refused.command, refused.accepted, refused.by) == ("Restart", False, "alice")
    assert applied.accepted and applied.signature is not None
    assert (applied.signature.signer, applied.signature.meaning) == ("carol", Meaning.APPROVED)


@pytest.mark.anyio
async def test_request_without_controller_expires(staffed_people: People) -> None:
    people = staffed_people
    c = Controller(people.db, two_steps())
    seen: dict[str, Any] = {}

    async def script(c: Controller) -> None:
        await until(lambda: c.execution.tasks.open_tasks != [])
        seen["hold"] = await in_thread(
            _command, people, "hold", c.run_id, "quinn", "--wait-s", "0.3"
        )
        c.execution.command(Command.ABORT, by="test", reason="end the test")

    outcome = await c.drive(script, poll=False)
    assert outcome.exit_status == "aborted"
    assert seen["hold"].code == 1 and "expired" in seen["hold"].out
    assert _commands(people.db, c.run_id) == []
    with reading_journal(people.db) as conn:
        (request_id,) = conn.execute("SELECT request_id FROM run_requests").fetchone()
        row = read_request(conn, request_id)
    assert row is not None and row.status == "expired" and row.run_seq is None
