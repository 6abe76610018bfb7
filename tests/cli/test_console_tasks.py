"""The run console answers tasks in place (design §6.2): stdin is fed, no terminal needed."""

from __future__ import annotations

import builtins
import io
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from cellauto.cli.console import RunConsole, describe_task
from cellauto.protocols.runner import Runner
from cellauto.protocols.tasks import OfferedTask, TaskAnswer, TaskBoard
from cellauto.records import payloads as rec
from cellauto.records.models import utc_from_epoch_s
from cellauto.records.refs import Meaning, SignatureShown
from cellauto.records.site_payloads import SessionClosed, Signature
from cellauto.site import auth
from cellauto.site.sessions import Session
from tests.cli.conftest import journal_records, write_protocol
from tests.cli.people import People, own, people, staffed
from tests.cli.test_run_as import PEOPLE_DEMO, crew, run_as, run_in, site_payloads

__all__ = ["crew", "people", "staffed"]  # fixtures


def test_a_task_is_printed_with_what_is_asked() -> None:
    summary = rec.TaskSummary(what="confirm", instruction="Sterile-weld the bag.")
    opened = rec.TaskOpened(
        task_id="7F3K2Q9A",
        step="receive",
        name="connect apheresis bag",
        summary=summary,
        timeout_h=2,
        answered_by="people",
    )
    shown = describe_task(OfferedTask(opened=opened, run_id="r"))
    assert shown == (
        "TASK 7F3K2Q9A confirm: connect apheresis bag — Sterile-weld the bag. (within 2 h)"
    )
    entry = opened.model_copy(
        update={
            "summary": rec.TaskSummary(
                what="entry", instruction="Weigh it.", value_type="float", unit="g", verify=True
            )
        }
    )
    task = OfferedTask(opened=entry, run_id="r", phase="verify", performer="alice", value=80.5)
    assert describe_task(task).startswith("TASK 7F3K2Q9A verify: connect apheresis bag — ")
    assert "performed 80.5 by alice" in describe_task(task)


class _Clock:
    """Monotonic time for sessions that jumps when stdin says ``<an hour later>``."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def idle_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Clock]:
    clock = _Clock()

    def session(*args: Any, **kwargs: Any) -> Session:
        return Session(*args, monotonic=clock, **kwargs)

    monkeypatch.setattr(auth, "Session", session)
    real_input = builtins.input

    def input_(prompt: str = "") -> str:
        line = real_input(prompt)
        if line == "<an hour later>":
            clock.now += 3600
            line = real_input(prompt)
        return line

    monkeypatch.setattr(builtins, "input", input_)
    yield clock


def test_after_the_idle_minutes_the_next_signing_needs_name_and_password(
    crew: People, tmp_path: Path, idle_clock: _Clock
) -> None:
    protocol = write_protocol(tmp_path, "people.py", PEOPLE_DEMO)
    result = run_as(
        crew, protocol, "alice",
        "<an hour later>", "y", "alice", own("alice"),
        "80", "alice", own("alice"),
        "y", "bob", own("bob"),
    )  # fmt: skip
    assert result.code == 0, result.err
    assert "performer's user name" in result.out
    site = site_payloads(crew.db)
    closed = [p for p in site if isinstance(p, SessionClosed)]
    assert [c.cause for c in closed] == ["idle"]  # and not again at exit
    signatures = [p for p in site if isinstance(p, Signature)]
    assert signatures[0].components == "user_id+password"  # the start
    assert [s.components for s in signatures[1:3]] == ["user_id+password"] * 2


class _Elsewhere:
    """Another terminal: answers a task once the console is asking it."""

    def __init__(self) -> None:
        self.console: RunConsole | None = None

    def offer(self, task: OfferedTask, board: TaskBoard) -> None:
        if task.phase == "perform" and task.opened.summary.what == "confirm":
            board.start_soon(self._answer, task, board)

    async def _answer(self, task: OfferedTask, board: TaskBoard) -> None:
        assert self.console is not None
        while self.console.input._waiter is None:  # the console asks now
            await anyio.lowlevel.checkpoint()
        board.deliver(
            TaskAnswer(
                task_id=task.opened.task_id,
                run_id=task.run_id,
                phase="perform",
                signature=SignatureShown(
                    signer="bob",
                    printed_name="Bob Tester",
                    meaning=Meaning.PERFORMED,
                    signed_at=utc_from_epoch_s(board.now_s()),
                    time_zone="UTC",
                    utc_offset="+00:00",
                ),
            )
        )


def test_an_answer_from_another_terminal_withdraws_the_console_question(
    crew: People, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = _Elsewhere()
    prepare = Runner.prepare

    def prepare_with_elsewhere(self: Runner, *args: Any, **kwargs: Any) -> Any:
        answerers = list(kwargs.get("answerers", ()))
        elsewhere.console = next(a for a in answerers if isinstance(a, RunConsole))
        kwargs["answerers"] = [*answerers, elsewhere]
        return prepare(self, *args, **kwargs)

    monkeypatch.setattr(Runner, "prepare", prepare_with_elsewhere)
    released = threading.Event()

    def nobody_types(prompt: str = "") -> str:  # the console's question stays open
        released.wait()
        raise EOFError

    source = PEOPLE_DEMO.split("    await run.enter(")[0]
    protocol = write_protocol(tmp_path, "confirm.py", source)
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{own('alice')}\n"))
    monkeypatch.setattr(builtins, "input", nobody_types)
    try:
        result = crew.cli(
            "run", protocol, "--sim", "--seed", "3", "--as", "alice", "--password-stdin",
            "--db", crew.db,
        )  # fmt: skip
    finally:
        released.set()
    assert result.code == 0, result.err
    assert "answered elsewhere; question withdrawn" in result.out
    records = journal_records(crew.db, run_in(result))
    answered = [r.payload for r in records if r.kind == "task_answered"]
    assert [a.signature.signer for a in answered] == ["bob"]
