"""What the run console signs, through the site (run in a worker thread, not on the loop).

Each act opens the journal's site store in the calling thread (a SQLite connection
belongs to its thread), signs the person in — with the password alone when they are
the console session's person and the session is open (§11.200(a)(1)(i)), else with
user name and password — and signs in one transaction:

* a task's phase: when the controller keeps the task's ``tasks`` row (its people inbox
  runs), exactly as ``cellauto answer`` does (:func:`~cellauto.site.task_answers.answer_task`:
  the row's conditional ``open -> answered`` makes one of two terminals win, and the
  inbox delivers the answer); else the run record to be signed (``task_opened`` to
  perform, ``task_answered`` to verify or reject) with the ``task_answer`` site record
  naming the signature, and the console delivers the answer itself;
* an approval: a supervisor's ``approved`` signature of the deviation a run holds for
  (the Restart that follows carries it).

Every refusal (wrong password, permission, training, self-verification, a changed
record) is journaled by the site layer and raised as a :class:`PeopleError`.
"""

from __future__ import annotations

import time
from typing import Any, Literal, NamedTuple

import orjson

from cellauto.errors import PeopleError, SignatureRefusedError
from cellauto.protocols.tasks import OfferedTask
from cellauto.records.backend import Location
from cellauto.records.refs import Meaning, RecordRef, SignatureShown, SiteRef
from cellauto.records.site_payloads import TaskAnswer, Terminal, TrainingSubject
from cellauto.records.task_rows import read_task
from cellauto.site.auth import Authenticated, authenticate
from cellauto.site.roles import Permission
from cellauto.site.sessions import Session
from cellauto.site.signatures import SignatureRefusal, journal_refusal, sign
from cellauto.site.store import open_site_store
from cellauto.site.task_answers import answer_task

from .run_people import Attendance, signature_shown

__all__ = [
    "Signed",
    "TaskSigned",
    "sign_approval",
    "sign_offered_task",
    "sign_task",
    "task_target",
]

Signed = tuple[SignatureShown, SiteRef]


class TaskSigned(NamedTuple):
    """A task's phase signed at the console."""

    signature: SignatureShown
    site: SiteRef
    through_row: bool
    """True: recorded on the task's ``tasks`` row, which the inbox delivers from."""


_TARGET_WAIT_S = 10.0


def task_target(
    db: Location,
    run_id: str,
    task_id: str,
    kind: Literal["task_opened", "task_answered"],
    known: RecordRef | None = None,
) -> RecordRef:
    """The record a signature of the task's phase signs: ``known`` (the board's) or the
    newest ``kind`` record of ``task_id``, once the controller's writer has committed it
    (it was appended just before the phase was offered: a moment, waited for here)."""
    deadline = time.monotonic() + _TARGET_WAIT_S
    with open_site_store(db) as store:
        while True:
            with store.reading() as conn:
                if known is not None:
                    stored = conn.execute(
                        "SELECT 1 FROM records WHERE run_id = ? AND seq = ?",
                        (known.run_id, known.seq),
                    ).fetchone()
                    if stored is not None:
                        return known
                else:
                    rows = conn.execute(
                        "SELECT seq, hash, body FROM records WHERE run_id = ? AND kind = ?"
                        " ORDER BY seq DESC LIMIT 200",
                        (run_id, kind),
                    ).fetchall()
                    for seq, digest, body in rows:
                        if orjson.loads(body)["payload"].get("task_id") == task_id:
                            return RecordRef(
                                chain="run", run_id=run_id, seq=seq, hash=digest, kind=kind
                            )
            if time.monotonic() > deadline:
                raise PeopleError(
                    f"the {kind} record of task {task_id} is not in the journal; the answer "
                    "is not signed"
                )
            time.sleep(0.02)  # the writer commits within a loop tick


def _sign_in(
    db: Location,
    name: str,
    password: str,
    session: Session | None,
    purpose: str,
    terminal: Terminal,
) -> Authenticated:
    with open_site_store(db) as store:
        own = session if session is not None and session.account == name else None
        return authenticate(store, name, password, purpose=purpose, terminal=terminal, session=own)


def sign_task(
    db: Location,
    *,
    name: str,
    password: str,
    session: Session | None,
    terminal: Terminal,
    run_id: str,
    task_id: str,
    phase: Literal["perform", "verify"],
    target: RecordRef,
    statement: str,
    permission: Permission,
    training: list[TrainingSubject],
    performer: str | None = None,
    value: Any = None,
    reject: bool = False,
    reason: str = "",
) -> TaskSigned:
    """``name`` signs a task's phase at the console (see the module doc)."""
    who = _sign_in(db, name, password, session, f"task {task_id} ({phase})", terminal)
    with open_site_store(db) as store:
        with store.reading() as conn:
            row = read_task(conn, task_id)
        if row is not None:
            given = answer_task(
                store,
                who,
                task_id,
                value=value,
                reject=reject,
                reason=reason,
                run_id=run_id,
                phase=phase,
            )
            return TaskSigned(signature_shown(store, given.signature), given.signature, True)
    if phase == "perform":
        meaning = Meaning.PERFORMED
    else:
        meaning = Meaning.REJECTED if reject else Meaning.VERIFIED
    with open_site_store(db) as store:
        try:
            with store.transaction() as tx:
                ref = sign(
                    tx,
                    who,
                    target,
                    meaning,
                    statement,
                    needed_training=training,
                    performer=performer,
                    permission=permission,
                    task_id=task_id,
                )
                tx.append(
                    TaskAnswer(
                        by=name,
                        terminal=terminal,
                        task_id=task_id,
                        run_id=run_id,
                        phase=phase,
                        target=target,
                        value=value,
                        reject=reject,
                        reason=reason,
                        signature=ref,
                    )
                )
        except SignatureRefusal as refusal:
            journal_refusal(store, refusal)
        return TaskSigned(signature_shown(store, ref), ref, False)


def sign_approval(
    db: Location,
    *,
    name: str,
    password: str,
    session: Session | None,
    terminal: Terminal,
    deviation: RecordRef,
    statement: str,
) -> Signed:
    """``name`` approves the Restart after ``deviation`` (a supervisor's signature)."""
    if deviation.chain != "run":
        raise SignatureRefusedError("an approval of a Restart signs the run's deviation record")
    who = _sign_in(
        db, name, password, session, f"restart after deviation #{deviation.seq}", terminal
    )
    with open_site_store(db) as store:
        try:
            with store.transaction() as tx:
                ref = sign(
                    tx,
                    who,
                    deviation,
                    Meaning.APPROVED,
                    statement,
                    permission=Permission.RUN_RESTART_AFTER_DEVIATION,
                )
        except SignatureRefusal as refusal:
            journal_refusal(store, refusal)
        return signature_shown(store, ref), ref


def sign_offered_task(
    attendance: Attendance,
    name: str,
    password: str,
    task: OfferedTask,
    kind: str,
    statement: str,
    permission: Permission,
    training: list[TrainingSubject],
    value: Any,
    reject: bool,
    reason: str,
) -> TaskSigned:
    """Sign ``task``'s current phase for the console of ``attendance`` (in a worker thread)."""
    opened = task.opened
    target = task_target(
        attendance.db,
        task.run_id,
        opened.task_id,
        "task_answered" if kind == "task_answered" else "task_opened",
        task.target,
    )
    return sign_task(
        attendance.db,
        name=name,
        password=password,
        session=attendance.session,
        terminal=attendance.terminal,
        run_id=task.run_id,
        task_id=opened.task_id,
        phase=task.phase,
        target=target,
        statement=statement,
        permission=permission,
        training=training,
        performer=task.performer,
        value=value,
        reject=reject,
        reason=reason,
    )
