"""``cellauto answer`` and the face's refusals (abuse cases 8-14, 19 of the design):
every refusal of an identified person is journaled (``signature_refused``) and raised
(exit 2); the controller is a people-answered run in the test's loop."""

from __future__ import annotations

import threading
from contextlib import closing
from typing import Any

import anyio
import orjson
import pytest

from cellauto.errors import (
    BadInputError,
    PermissionRefusedError,
    SignatureRefusedError,
    TaskNotOpenError,
    TrainingRequiredError,
)
from cellauto.protocols import Command
from cellauto.records import payloads as rec
from cellauto.records.site_payloads import TaskAnswer
from cellauto.records.site_store import SiteStore
from cellauto.site.history import reading_journal
from cellauto.site.store import open_site_store
from tests.cli.across import (
    Controller,
    all_rows,
    answer,
    finish,
    in_thread,
    records,
    refusals,
    signed_in,
    staffed_people,
    two_steps,
    until,
)
from tests.cli.people import People, own, people
from tests.raw_sql import raw_connect

__all__ = ["people", "staffed_people"]  # fixtures


def _cli_answer(people: People, who: str, task_id: str, *extra: object) -> Any:
    return people("answer", task_id, "--as", who, *extra, stdin=[own(who)])


@pytest.mark.anyio
async def test_answer_cli_signs_and_waits_for_the_controller(staffed_people: People) -> None:
    people = staffed_people
    c = Controller(people.db, two_steps())
    seen: dict[str, Any] = {}

    async def script(c: Controller) -> None:
        row = await c.open_task("perform", "connect bag")
        seen["confirm"] = await in_thread(_cli_answer, people, "alice", row.task_id)
        row = await c.open_task("perform", "bag weight")
        seen["enter"] = await in_thread(_cli_answer, people, "alice", row.task_id, "--value", 81)
        row = await c.open_task("verify", "bag weight")
        seen["tasks"] = await in_thread(people, "tasks")
        seen["json"] = await in_thread(people, "tasks", "--json", "--run", c.run_id)
        seen["verify"] = await in_thread(_cli_answer, people, "bob", row.task_id)

    outcome = await c.drive(script)
    assert outcome.exit_status == "complete", outcome.reason
    for step in ("confirm", "enter", "verify"):
        assert seen[step].code == 0, seen[step].err
        assert "taken up by the run's controller" in seen[step].out
    assert f"run {c.run_id} (people 1)" in seen["confirm"].out
    assert "Weld the bag to the set." in seen["confirm"].out
    table = seen["tasks"].out
    assert "WHO MAY ANSWER" in table and "not alice" in table and "trained on people@1" in table
    (listed,) = orjson.loads(seen["json"].out)
    assert listed["phase"] == "verify" and listed["performer"] == "alice"


@pytest.mark.anyio
async def test_replayed_answer_refused_and_journaled(staffed_people: People) -> None:
    db = staffed_people.db
    c = Controller(db, two_steps())
    seen: dict[str, Any] = {}

    async def script(c: Controller) -> None:
        row = await c.open_task("perform", "connect bag")
        await in_thread(answer, db, "alice", row.task_id)
        seen["again"] = await in_thread(_cli_answer, staffed_people, "bob", row.task_id)
        await finish(c)

    assert (await c.drive(script)).exit_status == "complete"
    assert seen["again"].code == 2
    assert "answered by alice at" in seen["again"].err
    last = refusals(db)[-1]
    assert (last.name, last.cause) == ("bob", "task_not_open")
    assert "answered by alice at" in last.detail


@pytest.mark.anyio
async def test_two_concurrent_answers_one_wins(staffed_people: People) -> None:
    db = staffed_people.db
    c = Controller(db, two_steps())
    outcomes: dict[str, object] = {}

    async def script(c: Controller) -> None:
        row = await c.open_task("perform", "connect bag")
        start = threading.Barrier(2)

        def give(name: str) -> None:
            with open_site_store(db) as store:  # its own connection, in its own thread
                who = signed_in(store, name)
                start.wait()
                try:
                    outcomes[name] = _answer(store, who, row.task_id)
                except TaskNotOpenError as exc:
                    outcomes[name] = exc

        threads = [threading.Thread(target=give, args=(n,)) for n in ("alice", "bob")]
        for thread in threads:
            thread.start()
        await in_thread(lambda: [t.join() for t in threads])
        await finish(c)

    assert (await c.drive(script)).exit_status == "complete"
    lost = [n for n, o in outcomes.items() if isinstance(o, TaskNotOpenError)]
    assert len(lost) == 1, outcomes
    (winner,) = set(outcomes) - set(lost)
    assert refusals(db)[-1].name == lost[0] and refusals(db)[-1].cause == "task_not_open"
    with reading_journal(db) as conn:
        given = [
            orjson.loads(b)["payload"]["by"]
            for (b,) in conn.execute("SELECT body FROM site_records WHERE kind = 'task_answer'")
        ]
    assert given.count(winner) >= 1 and lost[0] not in given[:1]
    answered = [p for p in records(db, c.run_id) if isinstance(p, rec.TaskAnswered)]
    assert answered[0].signature.signer == winner


def _answer(store: SiteStore, who: Any, task_id: str) -> object:
    from cellauto.site.task_answers import answer_task

    return answer_task(store, who, task_id)


@pytest.mark.anyio
async def test_answer_naming_another_run_refused(staffed_people: People) -> None:
    db = staffed_people.db
    c = Controller(db, two_steps())
    seen: dict[str, Any] = {}

    async def script(c: Controller) -> None:
        row = await c.open_task("perform", "connect bag")
        seen["cli"] = await in_thread(
            _cli_answer, staffed_people, "alice", row.task_id, "--run", "0" * 32
        )
        await finish(c)

    assert (await c.drive(script)).exit_status == "complete"
    assert seen["cli"].code == 2 and "belongs to run" in seen["cli"].err
    assert refusals(db)[0].cause == "wrong_run" and refusals(db)[0].run_id == "0" * 32


@pytest.mark.anyio
async def test_verifier_cannot_be_performer(staffed_people: People) -> None:
    db = staffed_people.db
    c = Controller(db, two_steps())
    caught: list[Exception] = []

    async def script(c: Controller) -> None:
        row = await c.open_task("perform", "connect bag")
        await in_thread(answer, db, "alice", row.task_id)
        row = await c.open_task("perform", "bag weight")
        await in_thread(answer, db, "alice", row.task_id, value=80)
        row = await c.open_task("verify", "bag weight")
        with pytest.raises(SignatureRefusedError, match="performed this step") as exc:
            await in_thread(answer, db, "alice", row.task_id)
        caught.append(exc.value)
        await in_thread(answer, db, "bob", row.task_id)

    assert (await c.drive(script)).exit_status == "complete"
    assert caught and refusals(db)[-1].cause == "self_verification"
    rejected = [p for p in records(db, c.run_id) if isinstance(p, rec.TaskRejected)]
    assert rejected == []  # refused at the face: the controller never saw it


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("name", "error", "cause"),
    [
        ("quinn", PermissionRefusedError, "permission"),  # QA may verify, not perform
        ("root", PermissionRefusedError, "permission"),  # an administrator signs nothing
        ("olga", TrainingRequiredError, "training"),  # an operator not trained on it
    ],
)
async def test_who_may_not_perform_is_refused(
    staffed_people: People, name: str, error: type[Exception], cause: str
) -> None:
    db = staffed_people.db
    c = Controller(db, two_steps())

    async def script(c: Controller) -> None:
        row = await c.open_task("perform", "connect bag")
        with pytest.raises(error):
            await in_thread(answer, db, name, row.task_id)
        await finish(c)

    assert (await c.drive(script)).exit_status == "complete"
    assert [(r.name, r.cause) for r in refusals(db)] == [(name, cause)]


@pytest.mark.anyio
async def test_expired_training_refused_naming_it(staffed_people: People) -> None:
    people = staffed_people
    done = people(
        "training", "add", "olga", "--for", "people@1", "--trained-on", "2020-01-01",
        "--expires", "2021-01-01", "--as", "carol", stdin=[own("carol")],
    )  # fmt: skip
    assert done.code == 0, done.err
    c = Controller(people.db, two_steps())

    async def script(c: Controller) -> None:
        row = await c.open_task("perform", "connect bag")
        with pytest.raises(TrainingRequiredError):
            await in_thread(answer, people.db, "olga", row.task_id)
        await finish(c)

    assert (await c.drive(script)).exit_status == "complete"
    assert refusals(people.db)[-1].cause == "training"
    assert "people" in refusals(people.db)[-1].detail


@pytest.mark.anyio
async def test_changed_target_refused(staffed_people: People) -> None:
    db = staffed_people.db
    c = Controller(db, two_steps())

    async def script(c: Controller) -> None:
        row = await c.open_task("perform", "connect bag")
        with reading_journal(db):
            pass

        with closing(raw_connect(db)) as conn:  # the row points at another record now
            conn.execute(
                "UPDATE tasks SET target_hash = ? WHERE task_id = ?", ("0" * 64, row.task_id)
            )
        with pytest.raises(SignatureRefusedError, match="hash differs"):
            await in_thread(answer, db, "alice", row.task_id)
        c.execution.command(Command.ABORT, by="test", reason="done")

    assert (await c.drive(script)).exit_status == "aborted"
    assert refusals(db)[-1].cause == "target_changed"
    assert [r.status for r in all_rows(db)] == ["withdrawn"]  # Abort took the task back


@pytest.mark.anyio
async def test_value_not_of_the_type_writes_nothing(staffed_people: People) -> None:
    db = staffed_people.db
    c = Controller(db, two_steps())

    async def script(c: Controller) -> None:
        row = await c.open_task("perform", "connect bag")
        await in_thread(answer, db, "alice", row.task_id)
        row = await c.open_task("perform", "bag weight")
        with pytest.raises(BadInputError, match="'72,4' is not"):
            await in_thread(answer, db, "alice", row.task_id, value="72,4")
        await finish(c)

    assert (await c.drive(script)).exit_status == "complete"
    assert refusals(db) == []
    with reading_journal(db) as conn:
        values = [
            orjson.loads(b)["payload"].get("value")
            for (b,) in conn.execute("SELECT body FROM site_records WHERE kind = 'task_answer'")
        ]
    assert values == [None, 80.0, None]


@pytest.mark.anyio
async def test_late_answer_after_abort_timeout_refused(staffed_people: People) -> None:
    db = staffed_people.db
    c = Controller(db, two_steps(timeout_h=0.0001, on_timeout="abort"))

    async def script(c: Controller) -> None:
        row = await c.open_task("perform", "connect bag")
        await in_thread(answer, db, "alice", row.task_id)
        row = await c.open_task("perform", "bag weight")
        await _until_status(db, row.task_id, "expired")
        with pytest.raises(TaskNotOpenError, match="expired"):
            await in_thread(answer, db, "alice", row.task_id, value=80)

    assert (await c.drive(script)).exit_status == "aborted"
    assert refusals(db)[-1].cause == "task_not_open"
    assert not [
        p for p in records(db, c.run_id) if isinstance(p, rec.TaskAnswered) and p.value == 80
    ]


async def _until_status(db: Any, task_id: str, status: str) -> None:
    await until(lambda: any(r.task_id == task_id and r.status == status for r in all_rows(db)))


_ = TaskAnswer


@pytest.mark.anyio
async def test_controller_refuses_an_answer_whose_signer_lost_training(
    staffed_people: People,
) -> None:
    people = staffed_people
    db = people.db
    c = Controller(db, two_steps())
    seen: dict[str, Any] = {}

    async def script(c: Controller) -> None:
        row = await c.open_task("perform", "connect bag")
        seen["alice"] = await in_thread(
            _cli_answer, people, "alice", row.task_id, "--wait-s", "0.2"
        )
        revoked = await in_thread(
            people, "training", "revoke", "alice", "--for", "people@1", "--as", "carol",
            "--reason", "retraining due", stdin=[own("carol")],
        )  # fmt: skip
        assert revoked.code == 0, revoked.err
        async with anyio.create_task_group() as group:  # the controller listens from now on
            group.start_soon(c.inbox.poll)
            await until(lambda: _rejected(db, c.run_id) != [])
            await finish(c, performer="bob", verifier="carol")
            await until(lambda: c.outcome is not None)
            group.cancel_scope.cancel()

    assert (await c.drive(script, poll=False)).exit_status == "complete"
    assert seen["alice"].code == 0 and "not yet taken up" in seen["alice"].out
    (rejected,) = _rejected(db, c.run_id)
    assert rejected.cause == "not_eligible" and rejected.by is not None
    assert rejected.by.signer == "alice" and "people" in rejected.detail
    answered = [p for p in records(db, c.run_id) if isinstance(p, rec.TaskAnswered)]
    assert [a.signature.signer for a in answered] == ["bob", "bob"]


def _rejected(db: Any, run_id: str) -> list[rec.TaskRejected]:
    with reading_journal(db) as conn:
        bodies = conn.execute(
            "SELECT body FROM records WHERE run_id = ? AND kind = 'task_rejected'", (run_id,)
        ).fetchall()
    return [rec.TaskRejected.model_validate(orjson.loads(b)["payload"]) for (b,) in bodies]


@pytest.mark.anyio
async def test_verifier_rejects_through_the_face_and_a_new_attempt_opens(
    staffed_people: People,
) -> None:
    people = staffed_people
    db = people.db
    c = Controller(db, two_steps())
    seen: dict[str, Any] = {}

    async def script(c: Controller) -> None:
        row = await c.open_task("perform", "connect bag")
        await in_thread(answer, db, "alice", row.task_id)
        first = await c.open_task("perform", "bag weight")
        await in_thread(answer, db, "alice", first.task_id, value=60)
        row = await c.open_task("verify", "bag weight")
        seen["reject"] = await in_thread(
            _cli_answer, people, "bob", row.task_id, "--reject", "--reason", "scale not tared"
        )
        second = await c.open_task("perform", "bag weight")
        seen["ids"] = (first.task_id, second.task_id)
        await in_thread(answer, db, "alice", second.task_id, value=80)
        row = await c.open_task("verify", "bag weight")
        await in_thread(answer, db, "bob", row.task_id)

    assert (await c.drive(script)).exit_status == "complete"
    assert seen["reject"].code == 0, seen["reject"].err
    first, second = seen["ids"]
    assert first != second
    (rejected,) = _rejected(db, c.run_id)
    assert rejected.cause == "rejected" and rejected.detail == "scale not tared"
    assert rejected.by is not None and rejected.by.meaning.value == "rejected"
    assert {r.task_id: r.status for r in all_rows(db) if r.name == "bag weight"} == {
        first: "closed",
        second: "closed",
    }
