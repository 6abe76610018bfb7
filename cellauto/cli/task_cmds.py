"""``cellauto tasks`` and ``cellauto answer``: operator tasks of running batches, answered
from any terminal.

``tasks`` lists what waits for a person. ``answer TASK_ID --as USER`` shows the run,
protocol, chain-of-identity id, step and the instruction, then signs (the password is
asked, or one line of stdin with ``--password-stdin``) and waits until the run's
controller took the answer up or refused it. Exit 0 taken up (or recorded and not yet
taken up: said so); 2 a refusal (journaled first: the task answered by someone else
already, another run's task, a changed record, permission, training, self-verification)
or bad input (nothing written).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import orjson

from cellauto.errors import BadInputError
from cellauto.records import payloads as rec
from cellauto.records.backend import Conn, Location
from cellauto.records.refs import Meaning
from cellauto.records.task_rows import TaskRow, read_task
from cellauto.site.history import has_site_tables, reading_journal
from cellauto.site.roles import PERMISSIONS, Permission
from cellauto.site.run_facts import RunFacts, run_facts
from cellauto.site.task_answers import AnswerGiven, Outcome, answer_task, controller_outcome

from .people_cmds import common_options, local_time, policy_or_none, print_table, sign_in, store_of
from .prompt import Passwords


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("tasks", help="operator tasks", description=__doc__)
    p.add_argument("--run", dest="run_id", metavar="RUN_ID", help="only this run's")
    p.add_argument("--all", action="store_true", help="also answered, closed, expired ones")
    p.add_argument("--json", action="store_true", help="one JSON list on stdout")
    common_options(p, acting=False)
    p.set_defaults(handler=tasks_command)

    p = sub.add_parser("answer", help="answer a task", description=__doc__)
    p.add_argument("task_id", metavar="TASK_ID")
    p.add_argument("--as", dest="as_user", required=True, metavar="USER", help="who answers")
    p.add_argument("--value", help="the value entered (an entry task)")
    p.add_argument("--meaning", choices=[m.value for m in Meaning], help="checked, not chosen")
    p.add_argument("--reject", action="store_true", help="verify phase: reject the entry")
    p.add_argument("--reason", default="", help="why (with --reject: what is wrong)")
    p.add_argument("--run", dest="run_id", metavar="RUN_ID", help="the run you mean to answer")
    p.add_argument("--wait-s", type=float, default=10.0, help="wait for the controller (s)")
    common_options(p)
    p.set_defaults(handler=answer_command)


# -- tasks --------------------------------------------------------------------------------
def _rows(conn: Conn, run_id: str | None, everything: bool) -> list[TaskRow]:
    query = f"SELECT {', '.join(TaskRow._fields)} FROM tasks"
    where, args = [], []
    if not everything:
        where.append("status = 'open'")
    if run_id is not None:
        where.append("run_id = ?")
        args.append(run_id)
    if where:
        query += " WHERE " + " AND ".join(where)
    return [TaskRow(*r) for r in conn.execute(query + " ORDER BY opened_wall_ns, task_id", args)]


def who_may_answer(row: TaskRow, run: RunFacts | None) -> str:
    """Roles granting the phase's permission, the training needed, and who may not."""
    summary = rec.TaskSummary.model_validate_json(row.summary)
    permission = Permission.STEP_VERIFY if row.phase == "verify" else Permission(summary.permission)
    roles = [role.value for role, granted in PERMISSIONS.items() if permission in granted]
    parts = ["/".join(roles) or "nobody"]
    subjects = [f"{s.name}@{s.version}" if s.version else s.name for s in summary.training]
    if run is not None:
        subjects.append(f"{run.protocol}@{run.version}")
    if subjects:
        parts.append("trained on " + ", ".join(subjects))
    if row.phase == "verify" and row.performer:
        parts.append(f"not {row.performer}")
    return "; ".join(parts)


def _what(row: TaskRow) -> str:
    summary = rec.TaskSummary.model_validate_json(row.summary)
    if summary.what == "confirm":
        return f"confirm: {row.name}"
    unit = f" [{summary.unit}]" if summary.unit else ""
    return f"enter {summary.value_type}{unit}: {row.name}"


def tasks_command(args: argparse.Namespace) -> int:
    db = args.db
    with reading_journal(db) as conn:
        if not has_site_tables(conn):
            rows, policy, runs = [], None, {}
        else:
            rows = _rows(conn, args.run_id, args.all)
            policy = policy_or_none(conn)
            runs = {r.run_id: run_facts(conn, r.run_id) for r in rows}
    listed = [
        {
            "task_id": r.task_id,
            "run_id": r.run_id,
            "step": r.step,
            "name": r.name,
            "what": _what(r),
            "phase": r.phase,
            "status": r.status,
            "since": local_time(policy, r.updated_wall_ns),
            "due": None
            if r.due_process_time_s is None
            else local_time(policy, round(r.due_process_time_s * 1e9)),
            "who_may_answer": who_may_answer(r, runs.get(r.run_id)),
            "performer": r.performer,
            "instruction": rec.TaskSummary.model_validate_json(r.summary).instruction,
        }
        for r in rows
    ]
    if args.json:
        print(orjson.dumps(listed).decode())
        return 0
    if not listed:
        print("no open tasks" + (f" for run {args.run_id}" if args.run_id else ""))
        return 0
    table = [["TASK", "RUN", "STEP", "WHAT", "PHASE", "SINCE", "DUE", "WHO MAY ANSWER"]]
    for t in listed:
        phase = t["phase"] if t["status"] == "open" else f"{t['phase']} ({t['status']})"
        table.append(
            [
                str(t["task_id"]),
                str(t["run_id"])[:12],
                str(t["step"]),
                str(t["what"]),
                str(phase),
                str(t["since"]),
                str(t["due"] or "-"),
                str(t["who_may_answer"]),
            ]
        )
    print_table(table)
    return 0


# -- answer -------------------------------------------------------------------------------
def _show(row: TaskRow, run: RunFacts | None) -> None:
    summary = rec.TaskSummary.model_validate_json(row.summary)
    if run is not None:
        coi = f", COI {run.coi}" if run.coi else ""
        print(f"run {row.run_id} ({run.protocol} {run.version}{coi})")
    print(f"step {row.step}: task {row.task_id} — {_what(row)} ({row.phase})")
    print(f"  {summary.instruction}")
    if row.phase == "verify":
        print(f"  performed by {row.performer}; you verify the entry as recorded")


def wait_for_controller(db: Location, given: AnswerGiven, wait_s: float) -> Outcome | None:
    deadline = time.monotonic() + wait_s
    while True:
        with reading_journal(db) as conn:
            seen = controller_outcome(conn, given)
        if seen is not None or time.monotonic() >= deadline:
            return seen
        time.sleep(0.1)


def answer_command(args: argparse.Namespace) -> int:
    db = args.db
    if args.reject and not args.reason.strip():
        raise BadInputError("--reject needs --reason (what is wrong with the entry)")
    task_id = args.task_id.strip().upper()
    with reading_journal(db) as conn:
        row = read_task(conn, task_id) if has_site_tables(conn) else None
        run = run_facts(conn, row.run_id) if row is not None else None
    if row is not None:
        _show(row, run)
    meaning = Meaning(args.meaning) if args.meaning else None
    with store_of(args) as store:
        who = sign_in(store, Passwords(args.password_stdin), args.as_user, f"answer {task_id}")
        given = answer_task(
            store,
            who,
            task_id,
            value=args.value,
            reject=args.reject,
            reason=args.reason,
            run_id=args.run_id,
            meaning=meaning,
            phase=None if row is None else row.phase,
        )
    print(
        f"signed by {args.as_user}: task {task_id} {given.task.phase} "
        f"(signature site record {given.signature.seq})"
    )
    seen = wait_for_controller(db, given, args.wait_s)
    if seen is None:
        print(
            f"recorded; not yet taken up by the run's controller (waited {args.wait_s:g} s): "
            "it takes it up when it runs"
        )
        return 0
    status, detail = seen
    if status == "refused":
        print(f"refused by the run's controller: {detail}")
        return 2
    print(f"taken up by the run's controller ({detail})")
    return 0
