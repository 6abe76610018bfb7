"""A run answered by people through the real paths, for the evidence tests.

A :class:`Signer` is the answerer a console or ``cellauto answer`` would be: offered a
task, it signs the task's run record in the site chain (``sign_in_store``) as the person
it is told, and delivers the answer with the signature as the run records show it
(``shown``) to the controller's :class:`~cellauto.protocols.tasks.TaskBoard`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio

from cellauto import Protocol, Run
from cellauto.instruments import Line
from cellauto.protocols import Runner
from cellauto.protocols.tasks import OfferedTask, TaskAnswer, TaskBoard
from cellauto.records import Journal
from cellauto.records import payloads as rec
from cellauto.records.refs import Meaning, RecordRef
from cellauto.records.site_chain import read_site_record
from cellauto.records.site_payloads import Signature
from cellauto.site.signatures import shown, sign_in_store
from tests.protocols.harness import ORIGIN, Valve
from tests.site.conftest import Site


def weigh_protocol() -> Protocol:
    """Connect a bag (one signature), weigh it (performed, then verified by another)."""
    protocol = Protocol("people-evidence", version="1")

    @protocol.step(resume="operator")
    async def formulate(run: Run, valve: Valve) -> None:
        await run.confirm("connect bag", instruction="Weld the bag to the set.")
        await run.enter("bag weight", type=float, unit="g", instruction="Weigh.", verify=True)
        await valve.open()

    return protocol


class Signer:
    """Answers each offered task: alice performs, carol verifies, signing in the site chain."""

    def __init__(
        self,
        site: Site,
        journal: Journal,
        *,
        sign_run_started: bool = False,
        simulated_first: bool = False,
    ) -> None:
        self.site, self.journal = site, journal
        self.sign_run_started = sign_run_started
        """Sign the run's first record in place of the task's (a misused signature)."""
        self.simulated_first = simulated_first
        """Deliver a simulated operator's answer to the first task first (it is refused)."""
        self.pending: list[tuple[OfferedTask, TaskBoard]] = []
        self.changed = anyio.Event()

    def offer(self, task: OfferedTask, board: TaskBoard) -> None:
        self.pending.append((task, board))
        self.changed.set()

    async def answer_all(self, tasks: int) -> None:
        """Answer ``tasks`` offers (perform and verify phases count one each)."""
        for _ in range(tasks):
            while not self.pending:
                self.changed = anyio.Event()
                await self.changed.wait()
            task, board = self.pending.pop(0)
            await self._answer(task, board)

    async def _answer(self, task: OfferedTask, board: TaskBoard) -> None:
        run_id = board.execution.run_id
        task_id = task.opened.task_id
        if task.phase == "perform":
            kind, who, meaning, value = rec.TaskOpened.kind, "alice", Meaning.PERFORMED, None
            if task.opened.summary.what == "entry":
                value = 80.0
        else:
            kind, who, meaning, value = rec.TaskAnswered.kind, "carol", Meaning.VERIFIED, None
        target = await _stored(self.journal, run_id, kind, task_id)
        if self.sign_run_started and task.phase == "perform":
            first = self.journal.records(run_id)[0]
            target = RecordRef(
                chain="run", run_id=run_id, seq=0, hash=first.hash, kind=first.kind.value
            )
        ref = sign_in_store(
            self.site.store,
            self.site.sign_in(who),
            target,
            meaning,
            f"I {meaning.value} task {task_id}",
            performer=task.performer,
        )
        with self.site.store.reading() as conn:
            record = read_site_record(conn, ref.seq)
        assert record is not None and isinstance(record.payload, Signature)
        if self.simulated_first:
            self.simulated_first = False
            fake = shown(record.payload, None).model_copy(
                update={"signer": "sim:operator-a", "simulated": True}
            )
            board.deliver(
                TaskAnswer(
                    task_id=task_id, run_id=run_id, phase=task.phase, signature=fake, simulated=True
                )
            )
        board.deliver(
            TaskAnswer(
                task_id=task_id,
                run_id=run_id,
                phase=task.phase,
                value=value,
                signature=shown(record.payload, ref),
                site=ref,
            )
        )


async def _stored(journal: Journal, run_id: str, kind: Any, task_id: str) -> RecordRef:
    """The task's record of ``kind`` once the journal's writer has stored it."""
    while True:
        for record in journal.records(run_id, {kind}):
            if getattr(record.payload, "task_id", None) == task_id:
                return RecordRef(
                    chain="run", run_id=run_id, seq=record.seq, hash=record.hash, kind=kind.value
                )
        await anyio.sleep(0.001)


async def run_answered_by_people(
    site: Site, path: Path, *, sign_run_started: bool = False, simulated_first: bool = False
) -> str:
    """Run :func:`weigh_protocol` to its end on a plant line, answered by people; its id."""
    with Journal(path) as journal:
        signer = Signer(
            site, journal, sign_run_started=sign_run_started, simulated_first=simulated_first
        )
        runner = Runner(journal, clock_origin=ORIGIN)
        execution = runner.prepare(
            weigh_protocol(), Line("plant", {"valve": Valve()}), answerers=[signer]
        )
        assert execution.tasks.operators == "people"
        async with anyio.create_task_group() as tg:
            tg.start_soon(execution.execute)
            await signer.answer_all(3)
        execution.close()
        return execution.run_id
