"""A person answers an operator task from any terminal (``cellauto answer``).

:func:`answer_task` runs in ONE site transaction: the task's row must exist and be
open in the phase being answered (else ``signature_refused cause=task_not_open``,
naming who answered it and when: a replay), belong to the run named (``--run``), and
name a target record whose stored hash is the row's; the value must be of the task's
type (bad input: refused before anything is signed, nothing written); then
:func:`~cellauto.site.signatures.sign` (permission, training for the run's protocol at
its version, not the performer), the ``task_answer`` record, and the conditional
``open -> answered`` update of the row: of two terminals at once only one wins. Every
refusal of an identified person is journaled, then raised (exit 2). The controller
takes the answer up from the row (:mod:`cellauto.protocols.inbox`).
"""

from __future__ import annotations

import time
from typing import Any, Literal, NamedTuple

import orjson

from cellauto.errors import (
    BadInputError,
    PeopleError,
    SignatureRefusedError,
    TaskNotOpenError,
)
from cellauto.protocols.task_entry import coerced
from cellauto.records import payloads as rec
from cellauto.records.backend import Conn
from cellauto.records.refs import Meaning, RecordRef, SiteRef
from cellauto.records.site_payloads import SignatureRefused, TaskAnswer, TrainingSubject
from cellauto.records.site_store import SiteStore, SiteTx
from cellauto.records.task_rows import TaskRow, mark_answered, read_task
from cellauto.site._chain import stored_site_record
from cellauto.site.auth import Authenticated
from cellauto.site.policy import current_policy, utc_datetime, zone_of
from cellauto.site.roles import Permission
from cellauto.site.run_facts import RunFacts, run_facts
from cellauto.site.signatures import SignatureRefusal, journal_refusal, sign

__all__ = [
    "AnswerGiven",
    "Outcome",
    "answer_task",
    "controller_outcome",
    "meaning_for",
    "statement_for",
    "task_opened_of",
]


class AnswerGiven(NamedTuple):
    """An answer recorded: its row as answered, the signature and the task_answer record."""

    task: TaskRow
    run: RunFacts
    signature: SiteRef
    answer: SiteRef


class Outcome(NamedTuple):
    """What the run's controller did with an answer: ``taken`` (``detail`` is the run
    record's kind) or ``refused`` (``detail`` says why)."""

    status: Literal["taken", "refused"]
    detail: str


def controller_outcome(conn: Conn, given: AnswerGiven) -> Outcome | None:
    """What the run's controller did with ``given`` (an answer this face recorded), or
    None while it has not taken it up yet. Read from the run chain (the run record that
    names the answer's signature) and the task's row; shared by ``cellauto answer`` and
    the web inbox, so both say the same."""
    row = given.task
    for kind, body in conn.execute(
        "SELECT kind, body FROM records WHERE run_id = ? AND seq > ? AND kind IN"
        " ('task_answered', 'task_verified', 'task_rejected') ORDER BY seq",
        (row.run_id, row.target_seq),
    ):
        payload = orjson.loads(body)["payload"]
        signature = payload.get("signature") or payload.get("by") or {}
        site = signature.get("site") or {}
        if payload.get("task_id") != row.task_id or site.get("seq") != given.signature.seq:
            continue
        if kind == "task_rejected" and payload.get("cause") != "rejected":
            return Outcome("refused", f"{payload.get('cause')}: {payload.get('detail')}")
        return Outcome("taken", kind)
    now = read_task(conn, row.task_id)
    if now is not None and now.answer_site_seq != given.answer.seq and now.status != "answered":
        if now.status in ("expired", "withdrawn"):
            return Outcome("refused", f"the task was {now.status} before the controller took it up")
        if now.status == "open" and (now.phase, now.target_seq) == (row.phase, row.target_seq):
            return Outcome(
                "refused", "the controller did not take the answer (see the run's record)"
            )
    return None


def task_opened_of(row: TaskRow) -> rec.TaskOpened:
    """The task as its row describes it (for the value's type and what to show)."""
    return rec.TaskOpened(
        task_id=row.task_id,
        step=row.step,
        name=row.name,
        summary=rec.TaskSummary.model_validate_json(row.summary),
        answered_by="people",
    )


def meaning_for(row: TaskRow, reject: bool, meaning: Meaning | None) -> Meaning:
    """The meaning of a signature answering ``row``'s phase; BadInputError otherwise."""
    wanted = (
        Meaning.PERFORMED
        if row.phase == "perform"
        else Meaning.REJECTED
        if reject
        else Meaning.VERIFIED
    )
    if reject and row.phase == "perform":
        raise BadInputError(
            f"task {row.task_id} is open to be performed; --reject is for its verify phase"
        )
    if meaning is not None and meaning is not wanted:
        raise BadInputError(
            f"task {row.task_id} is in its {row.phase} phase: a signature there means "
            f"{wanted.value}, not {meaning.value}"
        )
    return wanted


def statement_for(row: TaskRow, run: RunFacts, meaning: Meaning, value: Any) -> str:
    """The exact text the signer signs (shown before the password is asked)."""
    summary = rec.TaskSummary.model_validate_json(row.summary)
    what = f"{row.name} ({summary.instruction})"
    entered = (
        "" if value is None else f"; value {value!r}" + (f" {summary.unit}" if summary.unit else "")
    )
    where = f"run {run.run_id} ({run.protocol} {run.version}), step {row.step}, task {row.task_id}"
    verbs = {
        Meaning.PERFORMED: "I performed",
        Meaning.VERIFIED: "I verified",
        Meaning.REJECTED: "I reject the entry of",
    }
    return f"{verbs.get(meaning, meaning.value)}: {what}{entered} — {where}"


def _refusal(
    who: Authenticated,
    task_id: str,
    cause: str,
    detail: str,
    error: type[PeopleError],
    *,
    meaning: Meaning | None = None,
    target: RecordRef | None = None,
    run_id: str | None = None,
) -> SignatureRefusal:
    record = SignatureRefused(
        by=who.account.name,
        terminal=who.terminal,
        name=who.account.name,
        meaning=meaning,
        target=target,
        task_id=task_id,
        run_id=run_id,
        cause=cause,
        detail=detail,
    )
    return SignatureRefusal(record, error(f"signature refused: {detail}"))


def _when(tx: SiteTx, wall_time_ns: int) -> str:
    policy, _ = current_policy(tx.conn)
    return utc_datetime(wall_time_ns).astimezone(zone_of(policy)).isoformat(timespec="seconds")


def _not_open_detail(tx: SiteTx, row: TaskRow, phase_wanted: str | None) -> str:
    """Who answered it and when (a replay), or what became of it."""
    if row.answer_site_seq is not None:
        found = stored_site_record(tx.conn, row.answer_site_seq)
        if found is not None and isinstance(found.payload, TaskAnswer):
            return (
                f"task {row.task_id} ({row.phase}) was answered by {found.payload.by} at "
                f"{_when(tx, found.wall_time_ns)}; it is {row.status} now"
            )
    if row.status == "open" and phase_wanted is not None:
        return f"task {row.task_id} is open in its {row.phase} phase, not {phase_wanted}"
    return f"task {row.task_id} is {row.status} since {_when(tx, row.updated_wall_ns)}"


def answer_task(
    store: SiteStore,
    who: Authenticated,
    task_id: str,
    *,
    value: Any = None,
    reject: bool = False,
    reason: str = "",
    run_id: str | None = None,
    meaning: Meaning | None = None,
    phase: str | None = None,
) -> AnswerGiven:
    """Sign and record ``who``'s answer to ``task_id`` (see the module doc).

    ``phase``: the phase the person was shown (``perform``/``verify``); an answer given
    for a phase that has ended meanwhile is refused as not open. Raises a PeopleError
    (journaled first) for a refusal, BadInputError (nothing written) for a value not of
    the task's type or a meaning that does not fit."""
    task_id = task_id.strip().upper()
    try:
        with store.transaction() as tx:
            return _answer_in_tx(tx, who, task_id, value, reject, reason, run_id, meaning, phase)
    except SignatureRefusal as refusal:
        journal_refusal(store, refusal)


def _answer_in_tx(
    tx: SiteTx,
    who: Authenticated,
    task_id: str,
    value: Any,
    reject: bool,
    reason: str,
    run_id: str | None,
    meaning: Meaning | None,
    phase: str | None,
) -> AnswerGiven:
    row = read_task(tx.conn, task_id)
    if row is None:
        raise _refusal(
            who, task_id, "task_missing", f"no task {task_id} in this journal", TaskNotOpenError
        )
    if row.status != "open" or (phase is not None and phase != row.phase):
        detail = _not_open_detail(tx, row, phase)
        raise _refusal(who, task_id, "task_not_open", detail, TaskNotOpenError, run_id=row.run_id)
    if run_id is not None and run_id != row.run_id:
        raise _refusal(
            who,
            task_id,
            "wrong_run",
            f"task {task_id} belongs to run {row.run_id}, not to run {run_id}",
            SignatureRefusedError,
            run_id=run_id,
        )
    run = run_facts(tx.conn, row.run_id)
    if run is None or run.ended:
        what = "does not exist" if run is None else "has ended"
        raise _refusal(
            who,
            task_id,
            "task_not_open",
            f"run {row.run_id} of task {task_id} {what}",
            TaskNotOpenError,
            run_id=row.run_id,
        )
    signing = meaning_for(row, reject, meaning)
    if reject and not reason.strip():
        raise BadInputError("--reject needs --reason (what is wrong with the entry)")
    # a value not of the task's type: BadInputError, nothing written; a verifier signs
    # the entry as it was recorded
    value = coerced(task_opened_of(row), value) if row.phase == "perform" else None
    target = RecordRef(
        chain="run",
        run_id=row.run_id,
        seq=row.target_seq,
        hash=row.target_hash,
        kind="task_opened" if row.phase == "perform" else "task_answered",
    )
    summary = rec.TaskSummary.model_validate_json(row.summary)
    training = [
        *summary.training,
        TrainingSubject(kind="protocol", name=run.protocol, version=run.version),
    ]
    permission = Permission.STEP_VERIFY if row.phase == "verify" else Permission(summary.permission)
    signature = sign(
        tx,
        who,
        target,
        signing,
        statement_for(row, run, signing, value),
        needed_training=training,
        performer=row.performer,
        permission=permission,
        task_id=task_id,
    )
    answer = tx.append(
        TaskAnswer(
            by=who.account.name,
            reason=reason,
            terminal=who.terminal,
            task_id=task_id,
            run_id=row.run_id,
            phase=row.phase,
            target=target,
            value=value,
            reject=reject,
            signature=signature,
        )
    )
    won = mark_answered(
        tx.conn,
        task_id,
        phase=row.phase,
        target_seq=row.target_seq,
        answer_site_seq=answer.seq,
        wall_time_ns=max(tx.wall_time_ns, time.time_ns()),
    )
    if not won:  # unreachable under BEGIN IMMEDIATE; kept as the guard it is
        raise _refusal(
            who,
            task_id,
            "task_not_open",
            f"task {task_id} was answered by someone else meanwhile",
            TaskNotOpenError,
            run_id=row.run_id,
        )
    stored = read_task(tx.conn, task_id)
    return AnswerGiven(stored or row, run, signature, answer)
