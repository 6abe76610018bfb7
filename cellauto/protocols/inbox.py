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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import anyio
import orjson

from cellauto.clock import VirtualTimeEventLoop, real_seconds
from cellauto.errors import CellautoError, StateCommandError, TaskNotOpenError
from cellauto.protocols.execution import Execution
from cellauto.protocols.states import ACTIVE_STATES, Command, State
from cellauto.protocols.tasks import OfferedTask, TaskAnswer, TaskBoard, TaskEvent
from cellauto.records import Journal
from cellauto.records._txops import ConnOp
from cellauto.records.refs import RecordRef, SignatureShown, SiteRef
from cellauto.records.site_payloads import RunCommandRequested, Signature
from cellauto.records.site_payloads import TaskAnswer as Given
from cellauto.records.site_store import SiteStore
from cellauto.records.task_rows import (
    RequestRow,
    TaskRow,
    answered_tasks,
    close_task,
    pending_requests,
    put_task,
    read_task,
    reopen_task,
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

    def __init__(self, journal: Journal, *, period_s: float = 0.25) -> None:
        self.journal = journal
        self.period_s = period_s
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

    def authority(self) -> SiteAuthority:
        """The site's authority over answers to this journal's runs (who may answer now),
        read through a site store of the journal opened on first use (see :meth:`close`)."""
        if self._store is None:
            self._store = open_site_store(self.journal.path)
        return SiteAuthority(self._store.reading)

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
        self._queue(_put_row(row, task.target is None), execution.run_id, f"open {row.task_id}")
        self._wake.set()

    def task_event(self, task: OfferedTask, event: TaskEvent, board: TaskBoard) -> None:
        task_id, run_id = task.opened.task_id, board.execution.run_id
        wall_ns = time.time_ns()
        if event == "refused":  # the phase stays open: another answer may come

            def reopen(conn: sqlite3.Connection) -> object:
                return conn.execute(
                    "UPDATE tasks SET status = 'open', answer_site_seq = NULL,"
                    " updated_wall_ns = ? WHERE task_id = ? AND status = 'answered'",
                    (wall_ns, task_id),
                ).rowcount

            self._queue(reopen, run_id, f"refused answer of {task_id}")
            return
        status: Literal["closed", "expired", "withdrawn"] = event

        def close(conn: sqlite3.Connection) -> object:
            return close_task(conn, task_id, status, wall_time_ns=wall_ns)

        self._queue(close, run_id, f"{status} {task_id}")

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

    def _queue(
        self, change: Callable[[sqlite3.Connection], object], run_id: str, what: str
    ) -> None:
        self._ops.append(ConnOp(change, run_id=run_id, what=what))
        self._ops_ready.set()

    async def _write_rows(self) -> None:
        """Hand queued row changes to the writer, in order (one commit per batch)."""
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
        """Poll until cancelled (run it in the controller's task group)."""
        with contextlib.closing(_read_connection(self.journal.path)) as conn:
            last: int | None = None
            async with anyio.create_task_group() as group:
                group.start_soon(self._write_rows)
                while True:
                    version = int(conn.execute("PRAGMA data_version").fetchone()[0])
                    if version != last or self._wake.is_set():
                        last = version
                        self._wake = anyio.Event()
                        self.take_up(conn)
                    await self._pause()

    def take_up(self, conn: sqlite3.Connection) -> None:
        """Read what other terminals wrote for the registered runs, and deliver it."""
        runs = [run_id for run_id, e in self._runs.items() if e.state not in _ENDED]
        if not runs:
            return
        self.polls += 1
        with _snapshot(conn):
            tasks = answered_tasks(conn, runs)
            requests = pending_requests(conn, runs)
            answers = [(row, self._answer(conn, row)) for row in tasks]
            commands = [(row, _request(conn, row)) for row in requests]
        for row, answer in answers:
            self._deliver(row, answer)
        for request_row, request in commands:
            self._apply(request_row, request)

    def _answer(self, conn: sqlite3.Connection, row: TaskRow) -> TaskAnswer | str | None:
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
        try:
            execution.tasks.deliver(answer)
        except TaskNotOpenError as exc:  # ended here meanwhile: the row says how
            logger.warning("%s", exc)
            status = execution.tasks._ended.get(row.task_id, "closed")
            ending = status if status in ("expired", "withdrawn") else "closed"

            def settle(conn: sqlite3.Connection) -> object:
                return close_task(conn, row.task_id, ending, wall_time_ns=time.time_ns())  # type: ignore[arg-type]

            self._queue(settle, row.run_id, f"{ending} {row.task_id}")
        except CellautoError as exc:  # a value not of the task's type
            logger.warning("run %s task %s: %s", row.run_id, row.task_id, exc)
            self._reopen_refused(row)

    def _reopen_refused(self, row: TaskRow) -> None:
        def reopen(conn: sqlite3.Connection) -> object:
            return conn.execute(
                "UPDATE tasks SET status = 'open', answer_site_seq = NULL, updated_wall_ns = ?"
                " WHERE task_id = ? AND status = 'answered' AND answer_site_seq = ?",
                (time.time_ns(), row.task_id, row.answer_site_seq),
            ).rowcount

        self._queue(reopen, row.run_id, f"unreadable answer of {row.task_id}")

    def _apply(self, row: RequestRow, request: _Request | str | None) -> None:
        if row.request_id in self._handled:
            return
        self._handled.add(row.request_id)
        execution = self._runs[row.run_id]
        if row.expires_wall_ns <= time.time_ns():
            self._settle(row, "expired", "no controller took it up in time", None)
            return
        if isinstance(request, str) or request is None:
            self._settle(row, "refused", request or "unreadable request", None)
            return
        command = Command(row.command.capitalize())
        signature = request.signature
        authority = execution.tasks.authority
        refusal = (
            None
            if authority is None
            else authority.approval_refusal(signature, _COMMAND_PERMISSION[row.command])
        )
        if refusal is not None:
            execution._record_command(
                command,
                signature.signer,
                request.reason,
                refusal=f"{row.command} requested by {signature.signer} refused: {refusal}",
                signature=signature,
                request=request.ref,
            )
            self._settle(row, "refused", refusal, execution.last_command_seq)
            return
        try:
            execution.command(
                command,
                by=signature.signer,
                reason=request.reason,
                approval=request.approval or signature,
                request=request.ref,
            )
        except (StateCommandError, CellautoError) as exc:
            self._settle(row, "refused", str(exc), execution.last_command_seq)
            return
        self._settle(row, "applied", f"{command.value} applied", execution.last_command_seq)

    def _settle(self, row: RequestRow, status: str, outcome: str, run_seq: int | None) -> None:
        def settle(conn: sqlite3.Connection) -> object:
            return settle_request(conn, row.request_id, status, outcome=outcome, run_seq=run_seq)  # type: ignore[arg-type]

        self._queue(settle, row.run_id, f"{status} request {row.request_id}")

    async def _pause(self) -> None:
        loop = asyncio.get_running_loop()
        if not isinstance(loop, VirtualTimeEventLoop):
            with anyio.move_on_after(real_seconds(self.period_s, loop)):
                await self._wake.wait()
            return
        if self._waiting_for_people():
            with loop.real_time(), anyio.move_on_after(self.period_s):
                await self._wake.wait()
            return
        events = [self._wake] + [e._state_changed for e in self._runs.values()]
        await _first(*events)

    def _waiting_for_people(self) -> bool:
        return any(
            (e.tasks.operators == "people" and e.tasks.open_tasks)
            or e.state in (State.HOLDING, State.HELD)
            for e in self._runs.values()
            if e.state in ACTIVE_STATES
        )


_ENDED = {State.COMPLETE, State.STOPPED, State.ABORTED}


class _Request:
    def __init__(
        self,
        ref: SiteRef,
        reason: str,
        signature: SignatureShown,
        approval: SignatureShown | None,
    ) -> None:
        self.ref, self.reason, self.signature, self.approval = ref, reason, signature, approval


def _request(conn: sqlite3.Connection, row: RequestRow) -> _Request | str:
    """The request a row names, its signature and an approval (checked against hashes)."""
    try:
        head = stored_site_record(conn, row.site_seq)
        if (
            head is None
            or head.hash != row.site_hash
            or not isinstance(head.payload, RunCommandRequested)
            or head.payload.run_id != row.run_id
            or head.payload.command != row.command
        ):
            return f"site record {row.site_seq} is not the request the row names"
        target = RecordRef(chain="site", seq=head.seq, hash=head.hash, kind="run_command_requested")
        signature: SignatureShown | None = None
        approval: SignatureShown | None = None
        for seq in (row.site_seq + 1, row.site_seq + 2):
            found = stored_site_record(conn, seq)
            if found is None or found.wall_time_ns != head.wall_time_ns:
                break
            signed = found.payload
            if not isinstance(signed, Signature) or signed.signer != head.payload.by:
                break
            if signed.signed == target:
                signature = shown(signed, found.ref)
            elif signed.signed.chain == "run" and signed.signed.run_id == row.run_id:
                approval = shown(signed, found.ref)
    except CellautoError as exc:
        return str(exc)
    if signature is None:
        return f"request {row.request_id} carries no signature of its requester"
    return _Request(head.ref, head.payload.reason, signature, approval)


def _put_row(row: TaskRow, look_up_target: bool) -> Callable[[sqlite3.Connection], object]:
    """Open the row; an answer already given to this phase (while the controller was
    down) is kept. A task taken up again after a crash finds its target in the chain."""

    def put(conn: sqlite3.Connection) -> object:
        nonlocal row
        if look_up_target:
            found = _target_of(conn, row)
            if found is None:
                raise CellautoError(f"task {row.task_id}: no record to sign in run {row.run_id}")
            row = row._replace(target_seq=found[0], target_hash=found[1])
        old = read_task(conn, row.task_id)
        if (
            old is not None
            and old.status == "answered"
            and (old.phase, old.target_seq) == (row.phase, row.target_seq)
        ):
            return False
        if old is not None and old.status == "open" and old.phase == "perform" == row.phase:
            row = row._replace(opened_wall_ns=old.opened_wall_ns)
        if old is not None and row.phase == "verify":
            reopen_task(
                conn,
                row.task_id,
                phase="verify",
                target_seq=row.target_seq,
                target_hash=row.target_hash,
                performer=row.performer,
                wall_time_ns=row.updated_wall_ns,
            )
            return True
        put_task(conn, row)
        return True

    return put


def _target_of(conn: sqlite3.Connection, row: TaskRow) -> tuple[int, str] | None:
    """(seq, hash) of the phase's record: the task's task_opened, or its task_answered."""
    kind = "task_opened" if row.phase == "perform" else "task_answered"
    found = None
    for seq, digest, body in conn.execute(
        "SELECT seq, hash, body FROM records WHERE run_id = ? AND kind = ? ORDER BY seq",
        (row.run_id, kind),
    ):
        if orjson.loads(body)["payload"].get("task_id") == row.task_id:
            found = (int(seq), str(digest))
    return found


def _read_connection(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    conn.isolation_level = None
    return conn


@contextlib.contextmanager
def _snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")


async def _first(*events: anyio.Event) -> None:
    """Return when any of ``events`` is set."""
    async with anyio.create_task_group() as group:

        async def wait(event: anyio.Event) -> None:
            await event.wait()
            group.cancel_scope.cancel()

        for event in events:
            group.start_soon(wait, event)
