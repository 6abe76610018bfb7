"""The run console of ``cellauto run`` and ``resume``: answers in place (design §6.2).

:class:`RunConsole` answers a Held run (``restart``, ``stop``, ``abort``, or the
``--on-hold`` policy) and, in a run answered by people, is an
:class:`~cellauto.protocols.tasks.Answerer`: each task that opens is printed
(``TASK 7F3K2Q9A confirm: connect apheresis bag — instruction``) and, when the
console's session person may answer it, asked at once; the answer is signed through
the site (:mod:`cellauto.cli.console_signing`) and delivered to the run. The session
person signs with the password alone while the session is open; a verifier gives
name and password (never the performer); a Restart after a deviation asks for a
supervisor's name, password and reason (their approval). An answer from another
terminal ends the question (the board calls it off). ``lock`` ends the session; so
do the policy's idle minutes: the next signing then needs name and password.

Nothing here may disturb the run it serves: every failure is reported and the run
goes on (a Held run without an answer is stopped in order at the end of input).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from typing import Any

import anyio

from cellauto.clock import VirtualTimeEventLoop
from cellauto.errors import BadInputError, CellautoError, PeopleError, StateCommandError
from cellauto.protocols import Command, State
from cellauto.protocols.execution import Execution
from cellauto.protocols.responder import HoldResponder
from cellauto.protocols.task_entry import coerced
from cellauto.protocols.tasks import OfferedTask, TaskAnswer, TaskBoard
from cellauto.site.roles import Permission
from cellauto.site.signatures import signer_refusal

from .console_input import ConsoleInput
from .console_signing import TaskSigned, sign_approval, sign_offered_task
from .run_people import Attendance, protocol_subject
from .signals import abort_on_signal
from .task_text import describe_task

__all__ = ["RunConsole", "abort_on_signal", "describe_task"]

logger = logging.getLogger(__name__)

_LEAVE = ("s", "skip", "leave")


@contextlib.contextmanager
def _real_time() -> Iterator[None]:
    """While waiting for a person, virtual time must not race ahead."""
    loop = asyncio.get_running_loop()
    if isinstance(loop, VirtualTimeEventLoop):
        with loop.real_time():
            yield
    else:
        yield


class RunConsole(HoldResponder):
    """The console of one run: Held answers, and in-place task answers (module doc).

    ``attendance``: the person signed in with ``--as`` (None: nobody; the console then
    answers no task); ``people``: the run's tasks are answered by people (the console
    keeps virtual time at real pace while one is open); ``interactive``: questions may
    be asked on stdin (a terminal, or ``--password-stdin``)."""

    def __init__(
        self,
        mode: str,
        operator: str,
        *,
        attendance: Attendance | None = None,
        people: bool = False,
        interactive: bool = False,
    ) -> None:
        unattended = None if mode == "prompt" else mode.capitalize()
        super().__init__(unattended, by=f"cli --on-hold {mode}", reason="--on-hold policy")
        self.operator = operator
        self.attendance = attendance
        self.people = people
        self.interactive = interactive
        self.input = ConsoleInput(on_command=self._command)

    # -- lock ------------------------------------------------------------------------------
    def _command(self, line: str) -> bool:
        """``lock`` at any moment ends the session; other lines are answers."""
        if line != "lock":
            return False
        attendance = self.attendance
        if attendance is None or attendance.session.closed is not None:
            print("no session is open at this console", file=sys.stderr, flush=True)
            return True
        attendance.session.close("lock")
        print(
            f"session of {attendance.account} locked: the next signing asks for user name and "
            "password",
            file=sys.stderr,
            flush=True,
        )
        if self.task_group is not None:
            self.task_group.start_soon(anyio.to_thread.run_sync, attendance.record_close, "lock")
        return True

    def _session_open(self) -> bool:
        attendance = self.attendance
        if attendance is None:
            return False
        session = attendance.session
        if session.closed is None and session.idle():
            session.close("idle")
            if self.task_group is not None:
                self.task_group.start_soon(
                    anyio.to_thread.run_sync, attendance.record_close, "idle"
                )
        return session.closed is None

    # -- tasks (Answerer) ----------------------------------------------------------------
    def offer(self, task: OfferedTask, board: TaskBoard) -> None:
        print(describe_task(task), flush=True)
        board.start_soon(self._errand, task, board)

    async def _errand(self, task: OfferedTask, board: TaskBoard) -> None:
        """While the phase is open: ask (if someone here may answer); keep real time."""
        with _real_time():
            if self.interactive and self.attendance is not None:
                await self._answer_task(task, board)
            await anyio.sleep_forever()

    def _may_answer(self, task: OfferedTask) -> str | None:
        """Why the session person may not perform ``task`` (None: they may)."""
        attendance = self.attendance
        assert attendance is not None
        summary = task.opened.summary
        with attendance.store.reading() as conn:
            return signer_refusal(
                conn,
                attendance.account,
                Permission(summary.permission),
                summary.training,
                now_ns=time.time_ns(),
            )

    async def _answer_task(self, task: OfferedTask, board: TaskBoard) -> None:
        attendance = self.attendance
        assert attendance is not None
        task_id = task.opened.task_id
        if task.phase == "perform" and self._session_open():
            refused = self._may_answer(task)
            if refused is not None:
                print(
                    f"  {attendance.account} may not answer it here ({refused}); answer it from "
                    f"another terminal: cellauto answer {task_id} --as USER",
                    flush=True,
                )
                return
        try:
            async with self.input.dialog:
                if task.phase == "perform":
                    await self._perform(task, board)
                else:
                    await self._verify(task, board)
        except EOFError:
            return
        except anyio.get_cancelled_exc_class():
            print(f"\n  task {task_id}: answered elsewhere; question withdrawn", flush=True)
            raise

    async def _ask(self, prompt: str) -> str:
        return (await self.input.line(prompt)).strip()

    async def _perform(self, task: OfferedTask, board: TaskBoard) -> None:
        opened = task.opened
        value: Any = None
        while True:
            if opened.summary.what == "confirm":
                answer = await self._ask(
                    f"  {opened.task_id} performed? [y = sign, s = leave it for another terminal]: "
                )
                if answer.lower() in _LEAVE:
                    return
                if answer.lower() not in ("y", "yes"):
                    print("  please type y or s", file=sys.stderr, flush=True)
                    continue
            else:
                answer = await self._ask(f"  {opened.task_id} {opened.name} (s = leave it): ")
                if answer.lower() in _LEAVE:
                    return
                try:
                    value = coerced(opened, answer)
                except BadInputError as exc:
                    print(f"  {exc}", file=sys.stderr, flush=True)
                    continue
            signed = await self._sign(task, board, value=value)
            if signed is not None:
                self._deliver(task, board, signed, value=value)
                return

    async def _verify(self, task: OfferedTask, board: TaskBoard) -> None:
        opened = task.opened
        while True:
            answer = await self._ask(
                f"  {opened.task_id} verify? [y = verified, r = reject, s = leave it]: "
            )
            choice = answer.lower()
            if choice in _LEAVE:
                return
            if choice not in ("y", "yes", "r", "reject"):
                print("  please type y, r or s", file=sys.stderr, flush=True)
                continue
            reject = choice.startswith("r")
            reason = await self._ask("  reason for the rejection: ") if reject else ""
            signed = await self._sign(task, board, reject=reject, reason=reason, ask_name=True)
            if signed is not None:
                self._deliver(task, board, signed, reject=reject, reason=reason)
                return

    async def _who(self, *, ask_name: bool, what: str) -> tuple[str, str] | None:
        """(name, password) of who signs: the session person, or a name asked."""
        attendance = self.attendance
        assert attendance is not None
        if not ask_name and self._session_open():
            print(
                f"  signing as {attendance.printed_name} ({attendance.account})",
                flush=True,
            )
            name = attendance.account
        else:
            name = await self._ask(f"  {what} user name: ")
            if not name:
                return None
        password = await self.input.line(f"  password for {name}: ", secret=True)
        attendance.session.touch()
        return name, password

    async def _sign(
        self,
        task: OfferedTask,
        board: TaskBoard,
        *,
        value: Any = None,
        reject: bool = False,
        reason: str = "",
        ask_name: bool = False,
    ) -> TaskSigned | None:
        attendance = self.attendance
        assert attendance is not None
        opened = task.opened
        verifying = task.phase == "verify"
        who = await self._who(ask_name=ask_name, what="verifier's" if verifying else "performer's")
        if who is None:
            return None
        name, password = who
        kind = "task_answered" if verifying else "task_opened"
        meaning = "rejected" if reject else ("verified" if verifying else "performed")
        statement = (
            f"I, {name}, sign as {meaning}: task {opened.task_id} ({opened.name}) of run "
            f"{task.run_id}" + ("" if value is None else f", value {value!r}")
        )
        permission = Permission.STEP_VERIFY if verifying else Permission(opened.summary.permission)
        training = [*opened.summary.training, protocol_subject(board.execution.protocol)]
        try:
            return await anyio.to_thread.run_sync(
                lambda: sign_offered_task(
                    attendance,
                    name,
                    password,
                    task,
                    kind,
                    statement,
                    permission,
                    training,
                    value,
                    reject,
                    reason,
                )
            )
        except PeopleError as exc:
            print(f"  {exc}", file=sys.stderr, flush=True)
            return None

    def _deliver(
        self,
        task: OfferedTask,
        board: TaskBoard,
        signed: TaskSigned,
        *,
        value: Any = None,
        reject: bool = False,
        reason: str = "",
    ) -> None:
        shown, ref = signed.signature, signed.site
        if signed.through_row:  # the run's inbox takes it up from the tasks row
            print(f"  task {task.opened.task_id}: {shown.meaning.value} by {shown.signer}")
            return
        try:
            board.deliver(
                TaskAnswer(
                    task_id=task.opened.task_id,
                    run_id=task.run_id,
                    phase=task.phase,
                    value=value,
                    reject=reject,
                    reason=reason,
                    signature=shown,
                    site=ref,
                )
            )
            print(f"  task {task.opened.task_id}: {shown.meaning.value} by {shown.signer}")
        except CellautoError as exc:  # answered elsewhere meanwhile
            print(f"  {exc}", file=sys.stderr, flush=True)

    # -- Held ------------------------------------------------------------------------------
    async def decide(self, execution: Execution) -> tuple[Command, str, str] | None:
        if self.command is not None:
            return await super().decide(execution)
        while execution.state is State.HELD:
            try:
                with _real_time():
                    async with self.input.dialog:
                        answer = await self._ask("run is Held — type restart, stop or abort: ")
                        choice = answer.lower()
                        if choice == "restart" and self._needs_approval(execution):
                            if await self._approved_restart(execution):
                                return None
                            continue
            except EOFError:
                return Command.STOP, "cli console", "no operator answer (end of input)"
            if choice in ("restart", "stop", "abort"):
                by = self.operator
                if self.attendance is not None:
                    by = self.attendance.account
                return Command(choice.capitalize()), by, "operator at the console"
            print("please type restart, stop or abort", file=sys.stderr)
        return None

    def _needs_approval(self, execution: Execution) -> bool:
        return execution.hold_cause is not None and execution.tasks.operators == "people"

    async def _approved_restart(self, execution: Execution) -> bool:
        """A supervisor's name, password and reason; True when the Restart was applied."""
        cause = execution.hold_cause
        assert cause is not None
        print(
            f"  the run holds for a deviation (record #{cause.seq}): a supervisor approves "
            "the Restart",
            flush=True,
        )
        if self.attendance is None:
            print("  nobody is signed in at this console (--as)", file=sys.stderr, flush=True)
            return False
        name = await self._ask("  supervisor's user name: ")
        if not name:
            return False
        password = await self.input.line(f"  password for {name}: ", secret=True)
        reason = await self._ask("  reason (what was found, why the batch may go on): ")
        statement = (
            f"I, {name}, approve the Restart of run {execution.run_id} after the deviation "
            f"recorded as #{cause.seq}: {reason}"
        )
        attendance = self.attendance
        try:
            shown, _ = await anyio.to_thread.run_sync(
                lambda: sign_approval(
                    attendance.db,
                    name=name,
                    password=password,
                    session=attendance.session,
                    terminal=attendance.terminal,
                    deviation=cause,
                    statement=statement,
                )
            )
        except PeopleError as exc:
            print(f"  {exc}", file=sys.stderr, flush=True)
            return False
        if execution.state is not State.HELD:
            return True
        try:
            execution.command(Command.RESTART, by=name, reason=reason, approval=shown)
        except (StateCommandError, PeopleError) as exc:
            print(f"  restart refused: {exc}", file=sys.stderr, flush=True)
            return False
        return True
