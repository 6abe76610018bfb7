"""The operator task inbox as the web shows it: one card per task that waits for a person.

Read in one worker thread from the ``tasks`` table (open tasks, and answered ones the
run's controller has not taken up yet), the runs' first records (protocol, COI, DIN) and
the site's accounts and training: the signed-in person's own tasks come first (those
whose permission and training they hold now), the rest carry why not ("needs qa",
"not trained on web-live@1", "you performed it"). The server hides nothing it does not
also refuse: :func:`~cellauto.site.task_answers.answer_task` checks all of it again
under the write lock.

The answers given in a web session are kept in the server's memory
(:class:`SessionAnswers`) until the controller took them up, so that the card can say
"refused by the controller: …" when it did not.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from cellauto.records import payloads as rec
from cellauto.records._schema import is_missing_table
from cellauto.records.backend import Conn
from cellauto.records.refs import Meaning
from cellauto.records.site_payloads import SitePolicy, TrainingSubject
from cellauto.records.spec import Spec
from cellauto.records.task_rows import TaskRow, open_tasks, read_task
from cellauto.site.auth import account_refusal
from cellauto.site.policy import current_policy, utc_datetime, zone_of
from cellauto.site.replay import confirm_account
from cellauto.site.roles import Permission, Role, holders, permissions_of
from cellauto.site.run_facts import RunFacts, run_facts, stored_run_record
from cellauto.site.task_answers import AnswerGiven, controller_outcome, statement_for
from cellauto.site.training import check_training, subject_text

__all__ = ["Inbox", "SessionAnswers", "TaskCard", "read_inbox", "task_permission"]

KEPT_PER_SESSION = 8
"""Answers of one web session remembered until their controller took them up."""


@dataclass(frozen=True)
class TaskCard:
    """One task as a card shows it."""

    task_id: str
    run_id: str
    protocol: str
    version: str
    coi: str | None
    din: str | None
    step: str
    name: str
    instruction: str
    what: str
    """``confirm`` or ``entry``."""
    phase: str
    value_type: str | None
    unit: str
    spec: str | None
    """The spec in words (70 to 90 g, written with an en dash), or None."""
    choices: tuple[str, ...]
    pattern: str | None
    performer: str | None
    entered: str | None
    """The verify phase: the value as it was entered (with its unit)."""
    since: str
    statement: str
    """What the signer signs (the text the signature records)."""
    mine: bool
    why_not: str | None
    """Why the signed-in person may not answer it (None: they may)."""
    waiting: str | None = None
    """Answered, not yet taken up: "signed by alice — waiting for the controller"."""
    refused: str | None = None
    """This session's last answer to it, refused by the controller: why."""


@dataclass(frozen=True)
class Inbox:
    """The cards in the order shown, and this session's answers the controller refused
    whose task is no longer open (shown on their own)."""

    cards: list[TaskCard]
    refused: list[str]


class SessionAnswers:
    """Answers given in each web session (by its id), until the controller took them up."""

    def __init__(self) -> None:
        self._given: dict[str, list[AnswerGiven]] = {}
        self._lock = threading.Lock()

    def add(self, session_id: str, given: AnswerGiven) -> None:
        with self._lock:
            kept = self._given.setdefault(session_id, [])
            kept.append(given)
            del kept[:-KEPT_PER_SESSION]

    def of(self, session_id: str) -> list[AnswerGiven]:
        with self._lock:
            return list(self._given.get(session_id, ()))

    def drop(self, session_id: str) -> None:
        """Forget a closed session's answers (its pages are gone)."""
        with self._lock:
            self._given.pop(session_id, None)

    def sessions(self) -> int:
        with self._lock:
            return len(self._given)

    def forget(self, session_id: str, given: AnswerGiven) -> None:
        with self._lock:
            kept = self._given.get(session_id, [])
            if given in kept:
                kept.remove(given)
            if not kept:
                self._given.pop(session_id, None)


def task_permission(row: TaskRow, phase: str | None = None) -> Permission:
    """The permission answering ``row`` in ``phase`` (default: its phase now) needs."""
    if (phase or row.phase) == "verify":
        return Permission.STEP_VERIFY
    return Permission(rec.TaskSummary.model_validate_json(row.summary).permission)


def _spec_text(spec: Spec | None) -> str | None:
    if spec is None:
        return None
    unit = f" {spec.unit}" if spec.unit else ""
    if spec.min is not None and spec.max is not None:
        return f"{spec.min:g}\u2013{spec.max:g}{unit}"
    if spec.min is not None:
        return f"≥ {spec.min:g}{unit}"
    if spec.max is not None:
        return f"≤ {spec.max:g}{unit}"
    return None


def _din(conn: Conn, run_id: str) -> str | None:
    """The batch's DIN: its containers' (ISBT 128), else the run's ``din`` parameter."""
    try:
        row = conn.execute("SELECT din FROM containers WHERE run_id = ? LIMIT 1", (run_id,))
        found = row.fetchone()
    except sqlite3.OperationalError as exc:
        if not is_missing_table(exc):
            raise
        found = None
    if found is not None:
        return str(found[0])
    first = stored_run_record(conn, run_id, 0)
    params = (first[1].get("parameters") or {}) if first is not None else {}
    din = params.get("din") if isinstance(params, dict) else None
    return None if din is None else str(din)


def _entered(conn: Conn, row: TaskRow, unit: str) -> str | None:
    """The value the verifier is shown: the run's ``task_answered`` record's."""
    if row.phase != "verify":
        return None
    stored = stored_run_record(conn, row.run_id, row.target_seq)
    if stored is None or stored[0] != "task_answered":
        return None
    value = stored[1].get("value")
    shown = "yes" if value is True else "no" if value is False else f"{value}"
    return f"{shown} {unit}".strip()


def _when(policy: SitePolicy, wall_ns: int) -> str:
    moment = utc_datetime(wall_ns).astimezone(zone_of(policy))
    return moment.strftime("%Y-%m-%d %H:%M %Z").strip()


class _Person:
    """The signed-in person as the site knows them now (roles, training)."""

    def __init__(self, conn: Conn, name: str) -> None:
        self.conn = conn
        self.name = name
        confirmed = confirm_account(conn, name)
        self.roles: tuple[str, ...] = () if confirmed is None else tuple(confirmed[0].roles)
        self.state = (
            "unknown" if confirmed is None else account_refusal(confirmed[0], time.time_ns())
        )

    def why_not(self, row: TaskRow, summary: rec.TaskSummary, run: RunFacts | None) -> str | None:
        permission = task_permission(row)
        if self.state is not None:
            return f"your account is {self.state}"
        if Role.ADMINISTRATOR in self.roles or permission not in permissions_of(self.roles):
            return f"needs {holders(permission)}"
        if row.phase == "verify" and row.performer == self.name:
            return "you performed it"
        subjects: Sequence[TrainingSubject] = list(summary.training)
        if run is not None:
            subjects = [
                *subjects,
                TrainingSubject(kind="protocol", name=run.protocol, version=run.version),
            ]
        for subject in subjects:
            check = check_training(self.conn, self.name, [subject], now_ns=time.time_ns())
            if check.gap is not None:
                return f"not trained on {subject_text(subject)}"
        return None


def _statement(row: TaskRow, run: RunFacts | None) -> str:
    """The text a signature of the phase records (a verification's; an entry's without
    the value, which the form adds)."""
    if run is None:
        return ""
    meaning = Meaning.PERFORMED if row.phase == "perform" else Meaning.VERIFIED
    return statement_for(row, run, meaning, None)


def _signed_by(conn: Conn, row: TaskRow) -> str:
    if row.answer_site_seq is None:
        return "someone"
    found = conn.execute(
        "SELECT body FROM site_records WHERE seq = ?", (row.answer_site_seq,)
    ).fetchone()
    return "someone" if found is None else str(orjson.loads(found[0])["payload"]["by"])


def _answered_rows(conn: Conn) -> list[TaskRow]:
    """Tasks answered by a person that the run's controller has not taken up yet."""
    try:
        rows = conn.execute(
            f"SELECT {', '.join(TaskRow._fields)} FROM tasks WHERE status = 'answered'"
            " ORDER BY updated_wall_ns, task_id"
        ).fetchall()
    except sqlite3.OperationalError as exc:
        if is_missing_table(exc):
            return []
        raise
    return [TaskRow(*r) for r in rows]


def read_inbox(conn: Conn, name: str, answers: SessionAnswers, session_id: str) -> Inbox:
    """The inbox of ``name`` (signed in as web session ``session_id``)."""
    policy, _ = current_policy(conn)
    person = _Person(conn, name)
    refused_by_task: dict[str, str] = {}
    refused_alone: list[str] = []
    for given in answers.of(session_id):
        outcome = controller_outcome(conn, given)
        if outcome is None:
            continue
        if outcome.status == "taken":
            answers.forget(session_id, given)
            continue
        now = read_task(conn, given.task.task_id)
        text = f"refused by the controller: {outcome.detail}"
        if now is not None and now.status == "open":
            refused_by_task[now.task_id] = text
        else:
            refused_alone.append(f"task {given.task.task_id} ({given.task.name}): {text}")
    runs: dict[str, RunFacts | None] = {}
    cards: list[TaskCard] = []
    for row in [*open_tasks(conn), *_answered_rows(conn)]:
        if row.run_id not in runs:
            runs[row.run_id] = run_facts(conn, row.run_id)
        run = runs[row.run_id]
        summary = rec.TaskSummary.model_validate_json(row.summary)
        waiting = (
            f"signed by {_signed_by(conn, row)} — waiting for the controller"
            if row.status == "answered"
            else None
        )
        why_not = None if waiting else person.why_not(row, summary, run)
        cards.append(
            TaskCard(
                task_id=row.task_id,
                run_id=row.run_id,
                protocol=run.protocol if run else "?",
                version=run.version if run else "?",
                coi=run.coi if run else None,
                din=_din(conn, row.run_id),
                step=row.step,
                name=row.name,
                instruction=summary.instruction,
                what=summary.what,
                phase=row.phase,
                value_type=summary.value_type,
                unit=summary.unit,
                spec=_spec_text(summary.spec),
                choices=tuple(summary.choices or ()),
                pattern=summary.pattern,
                performer=row.performer,
                entered=_entered(conn, row, summary.unit),
                since=_when(policy, row.updated_wall_ns),
                statement=_statement(row, run),
                mine=waiting is None and why_not is None,
                why_not=why_not,
                waiting=waiting,
                refused=refused_by_task.get(row.task_id),
            )
        )
    cards.sort(key=lambda card: 0 if card.mine else 2 if card.waiting else 1)  # stable
    return Inbox(cards, refused_alone)
