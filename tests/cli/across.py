"""Helpers for answers and commands across processes: a staffed journal, a controller
running in the test's loop (a people-answered run with a PeopleInbox), and the faces
called from a thread as another terminal would."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from cellauto import Protocol, Run, Spec
from cellauto.instruments import Line
from cellauto.protocols import Runner
from cellauto.protocols.execution import Execution, RunOutcome
from cellauto.protocols.inbox import PeopleInbox
from cellauto.records import Journal
from cellauto.records import payloads as rec
from cellauto.records.site_chain import read_site_records
from cellauto.records.site_payloads import SignatureRefused, SiteKind
from cellauto.records.site_store import SiteStore
from cellauto.records.task_rows import TaskRow, open_tasks
from cellauto.site.auth import Authenticated, authenticate
from cellauto.site.history import reading_journal
from cellauto.site.run_requests import RequestGiven, request_command
from cellauto.site.store import open_site_store, this_terminal
from cellauto.site.task_answers import AnswerGiven, answer_task
from tests.cli.people import ROOT_PW, People, own
from tests.protocols.harness import ORIGIN, Valve

SPEC = Spec(min=70, max=90, unit="g")


def two_steps(*, timeout_h: float | None = None, on_timeout: str = "hold") -> Protocol:
    """``connect`` (a confirmation) and ``weigh`` (a verified entry, then the valve)."""
    protocol = Protocol("people", version="1")

    @protocol.step
    async def connect(run: Run) -> None:
        await run.confirm("connect bag", instruction="Weld the bag to the set.")

    @protocol.step
    async def weigh(run: Run, valve: Valve) -> None:
        await run.enter(
            "bag weight",
            type=float,
            unit="g",
            spec=SPEC,
            instruction="Weigh the bag.",
            verify=True,
            timeout_h=timeout_h,
            on_timeout=on_timeout,  # type: ignore[arg-type]
        )
        await valve.open()

    return protocol


def staff(people: People) -> None:
    """root (admin), alice and bob (operators, trained), carol (supervisor, trained),
    quinn (QA), olga (operator, not trained)."""
    people.bootstrap()
    for name, role in [
        ("alice", "operator"),
        ("bob", "operator"),
        ("carol", "supervisor"),
        ("quinn", "qa"),
        ("olga", "operator"),
    ]:
        people.add(name, role)
    for name in ("alice", "bob", "carol"):
        trainer = "quinn" if name == "carol" else "carol"
        done = people(
            "training", "add", name, "--for", "people@1", "--as", trainer, stdin=[own(trainer)]
        )
        assert done.code == 0, done.err


def signed_in(store: SiteStore, name: str) -> Authenticated:
    secret = ROOT_PW if name == "root" else own(name)
    return authenticate(store, name, secret, purpose="test", terminal=this_terminal())


def answer(db: Path, name: str, task_id: str, **options: Any) -> AnswerGiven:
    """``name`` answers from another terminal (call it in a thread)."""
    with open_site_store(db) as store:
        return answer_task(store, signed_in(store, name), task_id, **options)


def request(db: Path, name: str, run_id: str, command: str, **options: Any) -> RequestGiven:
    with open_site_store(db) as store:
        options.setdefault("reason", "test")
        options.setdefault("expires_s", 30.0)
        return request_command(store, signed_in(store, name), run_id, command, **options)


def task_rows(db: Path, run_id: str | None = None) -> list[TaskRow]:
    with reading_journal(db) as conn:
        return open_tasks(conn, run_id)


def all_rows(db: Path) -> list[TaskRow]:
    with reading_journal(db) as conn:
        return [
            TaskRow(*r)
            for r in conn.execute(f"SELECT {', '.join(TaskRow._fields)} FROM tasks").fetchall()
        ]


def records(db: Path, run_id: str) -> list[rec.Payload]:
    with Journal(db, create=False) as journal:
        return [r.payload for r in journal.records(run_id)]


async def until(condition: Callable[[], bool]) -> None:
    """Wait (on the loop's clock, bounded only by pytest's timeout) for ``condition``."""
    while not condition():  # noqa: ASYNC110  (the condition is another process's write)
        await anyio.sleep(0.02)


class Controller:
    """A people-answered run of ``protocol`` in this loop, with its inbox."""

    def __init__(self, db: Path, protocol: Protocol) -> None:
        self.db = db
        self.journal = Journal(db)
        self.store = open_site_store(db)
        self.inbox = PeopleInbox(self.journal)
        runner = Runner(self.journal, clock_origin=ORIGIN)
        self.execution: Execution = runner.prepare(
            protocol,
            Line("bench", {"valve": Valve()}),
            answerers=[self.inbox],
            authority=self.inbox.authority(),
        )
        self.inbox.register(self.execution)
        self.outcome: RunOutcome | None = None

    @property
    def run_id(self) -> str:
        return self.execution.run_id

    async def drive(
        self, script: Callable[[Controller], Awaitable[None]], *, poll: bool = True
    ) -> RunOutcome:
        """Execute the run while ``script`` acts; returns the outcome. ``poll=False``: the
        task rows are kept, but nothing other terminals send is taken up (a controller
        that does not listen, until the script starts ``inbox.poll``)."""
        async with anyio.create_task_group() as group:
            group.start_soon(self.inbox.run if poll else self.inbox.write_rows)

            async def execute() -> None:
                self.outcome = await self.execution.execute()
                self.execution.close()

            group.start_soon(execute)
            await script(self)
            await until(lambda: self.outcome is not None)
            group.cancel_scope.cancel()
        self.store.close()
        self.inbox.close()
        self.journal.close()
        assert self.outcome is not None
        return self.outcome

    async def open_task(self, phase: str = "perform", name: str | None = None) -> TaskRow:
        """Wait until a task row is open in ``phase`` (of ``name``) and return it."""
        found: list[TaskRow] = []

        def ready() -> bool:
            found[:] = [
                r
                for r in task_rows(self.db, self.run_id)
                if r.phase == phase and (name is None or r.name == name)
            ]
            return bool(found)

        await until(ready)
        return found[0]


async def in_thread(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return await anyio.to_thread.run_sync(lambda: func(*args, **kwargs))


@pytest.fixture
def staffed_people(people: People) -> People:
    staff(people)
    return people


def refusals(db: Path) -> list[SignatureRefused]:
    """The signature_refused site records, in order."""
    with reading_journal(db) as conn:
        found = read_site_records(conn, kinds={SiteKind.SIGNATURE_REFUSED})
        return [r.payload for r in found if isinstance(r.payload, SignatureRefused)]


async def finish(c: Controller, performer: str = "alice", verifier: str = "bob") -> None:
    """Answer whatever is still to answer in the two-step protocol, as it should be."""
    await until(lambda: _status(c, "connect bag") in ("open", "closed"))
    if _status(c, "connect bag") == "open":
        row = await c.open_task("perform", "connect bag")
        await in_thread(answer, c.db, performer, row.task_id)
    row = await c.open_task("perform", "bag weight")
    await in_thread(answer, c.db, performer, row.task_id, value=80)
    row = await c.open_task("verify", "bag weight")
    await in_thread(answer, c.db, verifier, row.task_id)


def _status(c: Controller, name: str) -> str | None:
    found = [r.status for r in all_rows(c.db) if r.name == name and r.run_id == c.run_id]
    return found[-1] if found else None
