"""Answers and commands from other terminals, through the database: the controller side.

A :class:`PeopleInbox` serves every run of one :class:`~cellauto.records.Journal` that
is answered by people (one per journal, not per run: many batches share it). It is

* an **answerer** (:class:`~cellauto.protocols.tasks.Answerer` and ``TaskWatcher``) of
  those runs: when a task phase is offered it writes the task's ``tasks`` row (open, the
  phase, the run record a signature of this phase signs) through the writer thread,
  in the commit of the records appended before it; when the phase ends it closes the
  row (``closed``, ``expired``, ``withdrawn``) and when the controller refuses an answer
  it opens the row again, so ``cellauto tasks`` and ``cellauto answer`` can tell;
* a **poller** (:meth:`run`, in the controller's task group): every 0.25 s of real time
  it asks ``PRAGMA data_version`` on its own read connection and, only when the file
  changed, reads the ``answered`` task rows and ``pending`` requests of its runs, the
  site records they name (each checked against its stored hash), and delivers: a
  :class:`~cellauto.protocols.tasks.TaskAnswer` to the run's board, a command to its
  :class:`~cellauto.protocols.execution.Execution` (the Command record carries the
  requester's signature and the request's site record; the row is settled ``applied``
  or ``refused`` with the Command's seq in the same commit). A request past its expiry
  is settled ``expired`` and never applied.

On a virtual clock (``--sim``) virtual time must not race past a person: while a run
waits for people (a task open, or Held) the poller waits inside ``loop.real_time()``,
so virtual time follows real time; otherwise it sleeps until a task is offered or a
run's state changes (a 0.25 s timer would wake millions of times in a 9-day batch).
Commands to a ``--sim`` run therefore take effect while it waits for people or is Held.
A controller service polls every 0.25 s of real time on any loop (``real_time_polls``):
on its virtual loop (``line_per_run``) many runs share one clock, and a Held one must
not slow the others to real time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import anyio

from cellauto.clock import VirtualTimeEventLoop, move_on_after_real, real_seconds
from cellauto.errors import CellautoError, TaskNotOpenError
from cellauto.protocols._events import wait_any
from cellauto.protocols.execution import Execution
from cellauto.protocols.inbox_rows import answer_seq, closing, put_row, reopening
from cellauto.protocols.remote_requests import (
    RemoteRequest,
    RunsAuthority,
    apply_request,
    read_remote_request,
)
from cellauto.protocols.states import ACTIVE_STATES, State
from cellauto.protocols.tasks import Authority, OfferedTask, TaskAnswer, TaskBoard, TaskEvent
from cellauto.records import Journal
from cellauto.records import backend as db
from cellauto.records._txops import ConnOp
from cellauto.records.backend import Conn
from cellauto.records.site_payloads import Signature
from cellauto.records.site_payloads import TaskAnswer as Given
from cellauto.records.site_store import SiteStore
from cellauto.records.task_rows import (
    RequestRow,
    TaskRow,
    answered_tasks,
    pending_requests,
    settle_request,
)
from cellauto.site._chain import stored_site_record
from cellauto.site.authority import SiteAuthority
from cellauto.site.signatures import shown
from cellauto.site.store import open_site_store

__all__ = ["PeopleInbox"]

logger = logging.getLogger(__name__)

_COMMAND_PERMISSION = {
    "hold": "run.hold",
    "restart": "run.restart",
    "stop": "run.stop",
    "abort": "run.abort",
}


class PeopleInbox:
    """Rows of the tasks of people-answered runs, and what other terminals send them."""

    simulated = False

    def __init__(
        self, journal: Journal, *, period_s: float = 0.25, real_time_polls: bool = False
    ) -> None:
        self.journal = journal
        self.period_s = period_s
        #: Poll every ``period_s`` of real time on any loop, never holding virtual time
        #: back: a controller service carrying many simulated runs on one virtual loop,
        #: where one Held run must not slow the others to real time.
        self.real_time_polls = real_time_polls
        self._runs: dict[str, Execution] = {}
        self._ops: list[ConnOp] = []
        self._ops_ready = anyio.Event()
        self._wake = anyio.Event()
        self._seen: set[tuple[str, int]] = set()
        """(task id, answer site seq) delivered: not delivered again."""
        self._handled: set[str] = set()
        self._store: SiteStore | None = None
        self.polls = 0
        """How often the file was read (it changed); for tests."""

    def authority(self) -> Authority:
        """The site's authority over answers to this journal's runs (who may answer now:
        the task's permission, training on the run's protocol at its version, not the
        performer), read through a site store of the journal opened on first use (see
        :meth:`close`)."""
        if self._store is None:
            self._store = open_site_store(self.journal.location)
        return RunsAuthority(SiteAuthority(self._store.reading), self._runs)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> PeopleInbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- registration ---------------------------------------------------------------------
    def register(self, execution: Execution) -> None:
        """Take up answers and commands for ``execution``'s run."""
        self._runs[execution.run_id] = execution
        self._wake.set()

    def unregister(self, execution: Execution) -> None:
        self._runs.pop(execution.run_id, None)

    # -- Answerer / TaskWatcher -----------------------------------------------------------
    def offer(self, task: OfferedTask, board: TaskBoard) -> None:
        """A phase is open: its row opens (in the commit after the phase's record)."""
        execution = board.execution
        self._runs.setdefault(execution.run_id, execution)
        row = self._row(task, board)
        self._queue(put_row(row, task.target is None), execution.run_id, f"open {row.task_id}")
        self._wake.set()

    def task_event(self, task: OfferedTask, event: TaskEvent, board: TaskBoard) -> None:
        task_id, run_id = task.opened.task_id, board.execution.run_id
        if event == "refused":  # the phase stays open: another answer may come
            self._queue(reopening(task_id), run_id, f"refused answer of {task_id}")
        else:
            self._queue(closing(task_id, event), run_id, f"{event} {task_id}")

    def _row(self, task: OfferedTask, board: TaskBoard) -> TaskRow:
        opened = task.opened
        target = task.target
        return TaskRow(
            task_id=opened.task_id,
            run_id=board.execution.run_id,
            step=opened.step or "",
            name=opened.name,
            phase=task.phase,
            status="open",
            target_seq=-1 if target is None else target.seq,
            target_hash="" if target is None else target.hash,
            summary=opened.summary.model_dump_json(),
            performer=task.performer if task.phase == "verify" else None,
            opened_wall_ns=time.time_ns(),
            due_process_time_s=opened.due_process_time_s,
            answer_site_seq=None,
            updated_wall_ns=time.time_ns(),
        )

    def _queue(self, change: Callable[[Conn], object], run_id: str, what: str) -> None:
        self._ops.append(ConnOp(change, run_id=run_id, what=what))
        self._ops_ready.set()

    async def write_rows(self) -> None:
        """Hand queued row changes to the writer, in order (one commit per batch), until
        cancelled (:meth:`run` does this and :meth:`poll`)."""
        while True:
            await self._ops_ready.wait()
            self._ops_ready = anyio.Event()
            ops, self._ops = self._ops, []
            if not ops:
                continue
            try:
                await self.journal.run_ops(ops)
            except CellautoError as exc:  # a lost run, a failed commit: reported, not fatal
                logger.error("tasks rows %s not written: %s", ops, exc)

    # -- the poller -------------------------------------------------------------------------
    async def run(self) -> None:
        """Keep the rows and poll until cancelled (in the controller's task group)."""
        async with anyio.create_task_group() as group:
            group.start_soon(self.write_rows)
            await self.poll()

    async def poll(self) -> None:
        """Take up what other terminals wrote, whenever the file changed, until cancelled."""
        with contextlib.closing(_read_connection(self.journal.location)) as conn:
            last: int | None = None
            while True:
                version = db.change_counter(conn)
                if version != last or self._wake.is_set():
                    last = version
                    self._wake = anyio.Event()
                    self.take_up(conn)
                await self._pause()

    def take_up(self, conn: Conn) -> None:
        """Read what other terminals wrote for the registered runs, and deliver it."""
        runs = [run_id for run_id, e in self._runs.items() if e.state not in _ENDED]
        if not runs:
            return
        self.polls += 1
        with _snapshot(conn):
            tasks = answered_tasks(conn, runs)
            requests = pending_requests(conn, runs)
            answers = [(row, self._answer(conn, row)) for row in tasks]
            commands = [(row, read_remote_request(conn, row)) for row in requests]
        for row, answer in answers:
            self._deliver(row, answer)
        for request_row, request in commands:
            self._apply(request_row, request)

    def _answer(self, conn: Conn, row: TaskRow) -> TaskAnswer | str | None:
        """The answer a row names (None: delivered already; str: why it is unreadable)."""
        if row.answer_site_seq is None or (row.task_id, row.answer_site_seq) in self._seen:
            return None
        self._seen.add((row.task_id, row.answer_site_seq))
        try:
            given = stored_site_record(conn, row.answer_site_seq)
            if given is None or not isinstance(given.payload, Given):
                return f"site record {row.answer_site_seq} is no task answer"
            answer = given.payload
            signed = stored_site_record(conn, answer.signature.seq)
        except CellautoError as exc:
            return str(exc)
        if (
            signed is None
            or signed.hash != answer.signature.hash
            or not isinstance(signed.payload, Signature)
            or signed.payload.signed != answer.target
            or signed.payload.signer != answer.by
        ):
            return f"site record {answer.signature.seq} is not the signature of that answer"
        return TaskAnswer(
            task_id=answer.task_id,
            run_id=answer.run_id,
            phase=answer.phase,
            value=answer.value,
            reject=answer.reject,
            reason=answer.reason,
            signature=shown(signed.payload, signed.ref),
            site=given.ref,
        )

    def _deliver(self, row: TaskRow, answer: TaskAnswer | str | None) -> None:
        if answer is None:
            return
        execution = self._runs[row.run_id]
        if isinstance(answer, str):
            logger.error(
                "run %s task %s: %s; run `cellauto verify`", row.run_id, row.task_id, answer
            )
            self._reopen_refused(row)
            return
        board = execution.tasks
        if board.status_of(row.task_id) is None:  # not asked (again) yet: after a restart
            self._seen.discard((row.task_id, answer_seq(row)))
            return
        try:
            board.deliver(answer)
        except TaskNotOpenError as exc:  # ended here meanwhile: the row says how
            logger.warning("%s", exc)
            status = board.status_of(row.task_id)
            ending: Literal["closed", "expired", "withdrawn"] = (
                "expired"
                if status == "expired"
                else "withdrawn"
                if status == "withdrawn"
                else "closed"
            )
            self._queue(closing(row.task_id, ending), row.run_id, f"{ending} {row.task_id}")
        except CellautoError as exc:  # a value not of the task's type
            logger.warning("run %s task %s: %s", row.run_id, row.task_id, exc)
            self._reopen_refused(row)

    def _reopen_refused(self, row: TaskRow) -> None:
        change = reopening(row.task_id, answer_seq(row))
        self._queue(change, row.run_id, f"refused answer of {row.task_id}")

    def _apply(self, row: RequestRow, request: RemoteRequest | str | None) -> None:
        if row.request_id in self._handled:
            return
        self._handled.add(row.request_id)
        if row.expires_wall_ns <= time.time_ns():  # never applied late
            self._settle(row, "expired", "no controller took it up in time", None)
            return
        if isinstance(request, str) or request is None:
            self._settle(row, "refused", request or "unreadable request", None)
            return
        self._settle(row, *apply_request(self._runs[row.run_id], row, request))

    def _settle(self, row: RequestRow, status: str, outcome: str, run_seq: int | None) -> None:
        def settle(conn: Conn) -> object:
            return settle_request(conn, row.request_id, status, outcome=outcome, run_seq=run_seq)  # type: ignore[arg-type]

        self._queue(settle, row.run_id, f"{status} request {row.request_id}")

    async def _pause(self) -> None:
        loop = asyncio.get_running_loop()
        if self.real_time_polls:
            with move_on_after_real(self.period_s):
                await self._wake.wait()
            return
        if not isinstance(loop, VirtualTimeEventLoop):
            with anyio.move_on_after(real_seconds(self.period_s, loop)):
                await self._wake.wait()
            return
        if self._waiting_for_people():
            with loop.real_time(), anyio.move_on_after(self.period_s):
                await self._wake.wait()
            return
        events = [self._wake] + [e._state_changed for e in self._runs.values()]
        await wait_any(*events)

    def _waiting_for_people(self) -> bool:
        return any(
            (e.tasks.operators == "people" and e.tasks.open_tasks)
            or e.state in (State.HOLDING, State.HELD)
            for e in self._runs.values()
            if e.state in ACTIVE_STATES
        )


_ENDED = {State.COMPLETE, State.STOPPED, State.ABORTED}
_ENDINGS: dict[str, Literal["closed", "expired", "withdrawn"]] = {
    "expired": "expired",
    "withdrawn": "withdrawn",
}


def _read_connection(path: Path | db.Location) -> Conn:
    return db.open_backend(path).connect_read_only(any_thread=True)


@contextlib.contextmanager
def _snapshot(conn: Conn) -> Iterator[None]:
    db.begin_read(conn)
    try:
        yield
    finally:
        conn.execute("COMMIT")
