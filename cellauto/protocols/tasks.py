"""The runner's side of operator tasks: put a task to people, take up their answers.

One :class:`TaskBoard` per run (``execution.tasks``). A step asks it through
:mod:`cellauto.protocols.people` (``run.confirm``, ``run.enter``); the board

1. waits at a hold point (no new instruction to a person while the run is Holding),
2. journals ``task_opened`` durably and offers the task to its in-process answerers
   (:class:`Answerer`: simulated operators, later the console),
3. waits for an answer *delivered* to it (:meth:`TaskBoard.deliver`, by any source: an
   in-process answerer today, a poller of the database for other terminals later), or
   for the task's timeout in process time,
4. checks the answer (its run, phase and meaning, who may answer it through an
   injectable :class:`Authority`, and that a verifier is not the performer); a refused
   answer is ``task_rejected`` and the task stays open,
5. journals ``task_answered`` (the performer's signature), then, for a two-person
   task, ``task_verified`` or, when the verifier rejects the entry, ``task_rejected``:
   the entry is void and a new attempt opens (a new task id).

While it waits the run is at a hold point: a Hold makes it Held (the person may still
answer; the step goes on only after Restart), Stop and Abort withdraw the task.
At the timeout: an alarm and a deviation, then ``hold`` (the run holds; a late answer
is still taken, marked late) or ``abort`` (``task_expired``, a late answer is refused,
the step raises :class:`~cellauto.protocols.context.RunAborted`).

After a controller crash the step asks again: a task answered before is not asked
again (its recorded answer is returned), an open one is offered again.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeGuard

import anyio

from cellauto.errors import ProtocolDefinitionError, TaskNotOpenError
from cellauto.protocols._events import wait_any
from cellauto.protocols.context import RunAborted
from cellauto.protocols.outcome import RunStopped
from cellauto.protocols.states import State
from cellauto.protocols.task_entry import coerced, task_id_for
from cellauto.protocols.task_types import (
    Answerer,
    Authority,
    OfferedTask,
    Phase,
    TaskAnswer,
    TaskEvent,
    TaskResult,
    TaskWatcher,
)
from cellauto.records import payloads as rec
from cellauto.records.refs import Meaning
from cellauto.records.spec import CheckPolicy

if TYPE_CHECKING:
    from cellauto.protocols.execution import Execution
    from cellauto.protocols.resume import RecordedTask

__all__ = [
    "Answerer",
    "Authority",
    "OfferedTask",
    "Phase",
    "TaskAnswer",
    "TaskBoard",
    "TaskEvent",
    "TaskResult",
    "TaskWatcher",
    "task_id_for",
]

logger = logging.getLogger(__name__)


@dataclass
class _Open:
    """A task the board is waiting on."""

    offered: OfferedTask
    due_s: float | None
    timed_out: bool = False
    status: str = "open"  # open | closed | expired | withdrawn
    inbox: list[TaskAnswer] = field(default_factory=list)
    wake: anyio.Event = field(default_factory=anyio.Event)

    @property
    def task_id(self) -> str:
        return self.offered.opened.task_id

    def poke(self) -> None:
        self.wake.set()


class TaskBoard:
    """The operator tasks of one run: asked by its steps, answered by people."""

    def __init__(
        self,
        execution: Execution,
        *,
        operators: Literal["people", "simulated"],
        answerers: Sequence[Answerer] = (),
        authority: Authority | None = None,
    ) -> None:
        self.execution = execution
        self.operators = operators
        self.answerers = list(answerers)
        self.authority = authority
        self.watchers: list[TaskWatcher] = [a for a in self.answerers if _watches(a)]
        self._open: dict[str, _Open] = {}
        self._ended: dict[str, str] = {}
        self._asked: set[tuple[str | None, str, str | None]] = set()
        self._group: anyio.abc.TaskGroup | None = None

    # -- what answerers and the outside see ----------------------------------------------
    @property
    def open_tasks(self) -> list[OfferedTask]:
        return [o.offered for o in self._open.values() if o.status == "open"]

    def status_of(self, task_id: str) -> str | None:
        """``open``, or how the task ended here (``closed``, ``expired``, ``withdrawn``);
        None: not asked by this board (yet: a resumed step asks again)."""
        waiting = self._open.get(task_id)
        return waiting.status if waiting is not None else self._ended.get(task_id)

    def now_s(self) -> float:
        """Process time (epoch s): what a signature given in this run is dated with."""
        return self.execution.clock.now_s()

    def start_soon(self, func: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
        """Run ``func(*args)`` until the phase of the task being offered ends (an
        answerer's errand: call it from :meth:`Answerer.offer`; it is called off when the
        phase is answered, the task withdrawn or the run aborted)."""
        if self._group is None:
            raise RuntimeError("TaskBoard.start_soon is for answerers, while a task is open")
        self._group.start_soon(func, *args)

    def deliver(self, answer: TaskAnswer) -> None:
        """Hand an answer to the task it names. TaskNotOpenError if that task is not open
        here (answered, expired, withdrawn, unknown); BadInputError for a value that is not
        of the task's type (refused before anything is recorded)."""
        waiting = self._open.get(answer.task_id)
        if waiting is None or waiting.status != "open":
            status = waiting.status if waiting else self._ended.get(answer.task_id, "unknown")
            raise TaskNotOpenError(
                f"task {answer.task_id} of run {self.execution.run_id} is not open ({status}); "
                "the answer is not taken"
            )
        if answer.phase == "perform" and answer.phase == waiting.offered.phase:
            value = coerced(waiting.offered.opened, answer.value)
            answer = answer.model_copy(update={"value": value})
        waiting.inbox.append(answer)
        waiting.poke()

    def withdraw_all(self, why: str) -> None:
        """Take back every open task (Stop, Abort): each is ``task_withdrawn``."""
        for waiting in list(self._open.values()):
            if waiting.status == "open":
                self._end(waiting, "withdrawn")
                self.execution.record(rec.TaskWithdrawn(task_id=waiting.task_id, why=why))
                self._tell(waiting, "withdrawn")
                waiting.poke()

    # -- asking ----------------------------------------------------------------------------
    def claim_name(self, name: str, key: str | None) -> None:
        """A step asks each (name, key) once; a second time is a protocol error."""
        step = self.execution.current_step_name
        if (step, name, key) in self._asked:
            keyed = f" with key {key!r}" if key is not None else ""
            raise ProtocolDefinitionError(
                f"step {step!r} asks task {name!r}{keyed} twice; give each task of a step its "
                "own name, or a distinct key= (as for measure_once)"
            )
        self._asked.add((step, name, key))

    async def ask(
        self, offered: OfferedTask, *, recorded: RecordedTask | None = None
    ) -> TaskResult:
        """Open the task (or take it up again after a crash) and return how it ended."""
        if recorded is not None:
            if recorded.closed:
                return recorded.result()
            if recorded.open:
                result = await self._settle(
                    offered, recorded.opened, recorded.answered, recorded.timed_out
                )
                if result is not None:
                    return result
        # a new attempt: the first, or the one after an entry its verifier rejected
        attempt = recorded.opened.attempt + 1 if recorded is not None else 1
        template = offered.opened
        while True:
            await self.execution.hold_point()
            now_s = self.now_s()
            opened = template.model_copy(
                update={
                    "task_id": task_id_for(
                        self.execution.run_id, template.step, template.name, template.key, attempt
                    ),
                    "attempt": attempt,
                    "due_process_time_s": (
                        None if template.timeout_h is None else now_s + template.timeout_h * 3600
                    ),
                }
            )
            offered.target = await self.execution.record_durable_ref(opened)
            result = await self._settle(offered, opened, None, False)
            if result is not None:
                return result
            attempt += 1

    async def _settle(
        self,
        offered: OfferedTask,
        opened: rec.TaskOpened,
        answered: rec.TaskAnswered | None,
        timed_out: bool,
    ) -> TaskResult | None:
        """Wait for the entry (unless ``answered``) and its verification; None: rejected."""
        offered.opened = opened
        waiting = _Open(offered, opened.due_process_time_s, timed_out=timed_out)
        self._open[opened.task_id] = waiting
        try:
            if answered is None:
                answer = await self._wait(waiting, "perform")
                answered = rec.TaskAnswered(
                    task_id=opened.task_id,
                    value=answer.value,
                    signature=answer.signature,
                    late=waiting.timed_out,
                )
                offered.target = self.execution.record_ref(answered)
            else:
                offered.target = None  # taken up again after a crash: the watcher looks
            result = TaskResult(
                task_id=opened.task_id,
                value=answered.value,
                performed_by=answered.signature,
                late=answered.late,
            )
            if opened.summary.verify:
                await self.execution.hold_point()  # no new instruction while Holding
                offered.performer = answered.signature.signer
                offered.value = answered.value
                check = await self._wait(waiting, "verify")
                self._end(waiting, "closed")
                self._tell(waiting, "closed")
                if check.reject:
                    self.execution.record(
                        rec.TaskRejected(
                            task_id=opened.task_id,
                            by=check.signature,
                            cause="rejected",
                            detail=check.reason,
                        )
                    )
                    return None
                self.execution.record(
                    rec.TaskVerified(
                        task_id=opened.task_id, signature=check.signature, late=waiting.timed_out
                    )
                )
                result = result.model_copy(
                    update={"verified_by": check.signature, "late": waiting.timed_out}
                )
            self._end(waiting, "closed")
            self._tell(waiting, "closed")
            return result
        finally:
            if waiting.status == "open":  # cancelled (Abort, a crash): the records say
                self._open.pop(opened.task_id, None)

    def _tell(self, waiting: _Open, event: TaskEvent) -> None:
        for watcher in self.watchers:
            try:
                watcher.task_event(waiting.offered, event, self)
            except Exception:  # an index must never disturb the batch
                logger.exception("run %s: task watcher %r failed", self.execution.run_id, watcher)

    def _end(self, waiting: _Open, status: str) -> None:
        waiting.status = status
        self._open.pop(waiting.task_id, None)
        self._ended[waiting.task_id] = status

    async def _wait(self, waiting: _Open, phase: Phase) -> TaskAnswer:
        """The next acceptable answer for ``phase``; refusals are journaled on the way.

        What the answerers started for this phase ends with it (a pending prompt, a
        simulated operator on their way)."""
        waiting.offered.phase = phase
        try:
            async with anyio.create_task_group() as group:
                self._group = group
                for answerer in self.answerers:
                    answerer.offer(waiting.offered, self)
                answer = await self._next_answer(waiting, phase)
                group.cancel_scope.cancel()
        finally:
            self._group = None
        return answer

    async def _next_answer(self, waiting: _Open, phase: Phase) -> TaskAnswer:
        execution = self.execution
        while True:
            while waiting.inbox:
                answer = waiting.inbox.pop(0)
                refusal = self._refusal(waiting, phase, answer)
                if refusal is None:
                    return answer
                cause, detail = refusal
                execution.record(
                    rec.TaskRejected(
                        task_id=waiting.task_id, by=answer.signature, cause=cause, detail=detail
                    )
                )
                logger.warning("run %s task %s: %s", execution.run_id, waiting.task_id, detail)
                self._tell(waiting, "refused")
            state = execution.state
            if waiting.status == "withdrawn" or state is State.STOPPING:
                self.withdraw_all("the run is stopping")
                raise RunStopped()
            if state is State.HOLDING:
                execution._set_state(
                    State.HELD, f"hold point reached: waiting for task {waiting.task_id}"
                )
                continue
            if state is State.RESTARTING:
                execution._set_state(State.RUNNING, "restart complete")
                continue
            left_s = math.inf
            if waiting.due_s is not None and not waiting.timed_out:
                left_s = waiting.due_s - self.now_s()
                if left_s <= 0:
                    self._time_out(waiting)
                    continue
            waiting.wake = anyio.Event()
            await wait_any(waiting.wake, execution._state_changed, timeout_s=left_s)

    def _time_out(self, waiting: _Open) -> None:
        """Nobody answered in time: an alarm, a deviation, and the task's policy."""
        execution = self.execution
        opened = waiting.offered.opened
        waiting.timed_out = True
        timeout_h = opened.timeout_h or 0.0
        check = f"{opened.name}: no answer within {timeout_h:g} h"
        reason = (
            f"step {opened.step!r}: task {opened.task_id} ({opened.name}) was not answered "
            f"within {timeout_h:g} h"
        )
        execution.alarm(reason, severity="major", source=opened.step or "run")
        if opened.on_timeout == "abort":
            self._end(waiting, "expired")
            execution.record(rec.TaskExpired(task_id=opened.task_id, policy="abort"))
            self._tell(waiting, "expired")
            execution.deviation(opened.step, check, reason + "; the run aborts", CheckPolicy.ABORT)
            raise RunAborted(reason)
        execution.deviation(
            opened.step,
            check,
            reason + "; the run holds, a late answer is still taken",
            CheckPolicy.HOLD,
        )

    def _refusal(self, waiting: _Open, phase: Phase, answer: TaskAnswer) -> tuple[str, str] | None:
        """(cause, detail) if the answer may not be taken; None if it may."""
        signer = answer.signature.signer
        if answer.run_id != self.execution.run_id:
            return "wrong_run", f"the answer names run {answer.run_id}, not this run"
        if answer.phase != phase:
            return "wrong_phase", f"an answer for the {answer.phase} phase; the task is in {phase}"
        meanings = {"perform": {Meaning.PERFORMED}, "verify": {Meaning.VERIFIED, Meaning.REJECTED}}
        wanted = Meaning.REJECTED if answer.reject else None
        meaning = answer.signature.meaning
        if meaning not in meanings[phase] or (wanted and meaning is not wanted):
            return "wrong_meaning", f"a signature meaning {meaning.value} cannot {phase} a task"
        if self.operators == "people" and (answer.simulated or answer.signature.simulated):
            return (
                "simulated_in_real_run",
                f"{signer} is a simulated operator; this run is answered by people",
            )
        performer = waiting.offered.performer if phase == "verify" else None
        if phase == "verify" and signer == performer:
            return (
                "self_verification",
                f"{signer} performed task {waiting.task_id} and cannot verify it; a second "
                "person must",
            )
        if self.authority is not None:
            refused = self.authority.refusal(answer, waiting.offered.opened, performer)
            if refused is not None:
                return "not_eligible", refused
        return None


def _watches(answerer: Answerer) -> TypeGuard[TaskWatcher]:
    return callable(getattr(answerer, "task_event", None))
