"""Answers and commands from other terminals reach an in-process controller through
the database (the PeopleInbox), as ``cellauto answer``/``hold`` give them."""

from __future__ import annotations

import pytest

from cellauto.records import payloads as rec
from cellauto.records.refs import Meaning
from tests.cli.across import (
    Controller,
    all_rows,
    answer,
    in_thread,
    records,
    staffed_people,
    two_steps,
)
from tests.cli.people import People, people

__all__ = ["people", "staffed_people"]  # fixtures


@pytest.mark.anyio
async def test_two_people_answer_from_other_terminals(staffed_people: People) -> None:
    db = staffed_people.db
    controller = Controller(db, two_steps())

    async def script(c: Controller) -> None:
        row = await c.open_task("perform", "connect bag")
        await in_thread(answer, db, "alice", row.task_id)
        row = await c.open_task("perform", "bag weight")
        await in_thread(answer, db, "alice", row.task_id, value="80.5")
        row = await c.open_task("verify", "bag weight")
        assert row.performer == "alice"
        await in_thread(answer, db, "bob", row.task_id)

    outcome = await controller.drive(script)
    assert outcome.exit_status == "complete", outcome.reason
    payloads = records(db, controller.run_id)
    answered = [p for p in payloads if isinstance(p, rec.TaskAnswered)]
    verified = [p for p in payloads if isinstance(p, rec.TaskVerified)]
    assert [(a.signature.signer, a.value) for a in answered] == [("alice", None), ("alice", 80.5)]
    assert [v.signature.signer for v in verified] == ["bob"]
    assert verified[0].signature.meaning is Meaning.VERIFIED
    signatures = [*(a.signature for a in answered), verified[0].signature]
    assert all(s.site is not None for s in signatures)
    assert not [p for p in payloads if isinstance(p, rec.TaskRejected)]
    assert {r.status for r in all_rows(db)} == {"closed"}
