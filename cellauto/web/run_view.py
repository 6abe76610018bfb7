"""What the run page shows, read from the run's records: its header (protocol, identity,
state, current step), the timeline of its steps with their acts, checks and signatures
(the batch record's own :func:`~cellauto.review.report.steps.steps_of`), the commands
its state and the viewer allow, the commands requested from afar and how they ended,
and one step's instrument I/O on demand.

The plotted series are the batch record's too (:mod:`cellauto.web.run_series`). Every
function here reads; nothing is written.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from cellauto.errors import CellautoError, RunNotFoundError
from cellauto.protocols.states import Command, State, allowed_commands
from cellauto.records import Journal
from cellauto.records import payloads as rec
from cellauto.records._sqlite import last_row_of_kind
from cellauto.records.backend import Conn
from cellauto.records.kinds import RecordKind
from cellauto.records.models import Record, utc_from_epoch_s
from cellauto.records.site_payloads import RunCommandRequested
from cellauto.records.task_rows import RequestRow
from cellauto.records.wording import describe_io
from cellauto.review.report.model import StepSection
from cellauto.review.report.steps import steps_of
from cellauto.site._chain import stored_site_record
from cellauto.site.roles import Permission, Role, permissions_of
from cellauto.site.run_requests import hold_deviation

__all__ = [
    "COMMAND_PERMISSION",
    "IO_PAGE",
    "CommandButton",
    "IoPage",
    "RequestShown",
    "RunHeader",
    "RunView",
    "StepShown",
    "command_buttons",
    "command_permission",
    "current_state",
    "io_page",
    "read_requests",
    "run_records",
    "run_view",
    "state_of",
]

COMMAND_PERMISSION: dict[str, Permission] = {
    "hold": Permission.RUN_HOLD,
    "restart": Permission.RUN_RESTART,
    "stop": Permission.RUN_STOP,
    "abort": Permission.RUN_ABORT,
}
"""The permission each command from the web needs (a Restart of a run held by a
deviation needs ``run.restart_after_deviation``: see :mod:`cellauto.web.routes.runs`)."""
IO_PAGE = 500
"""Instrument I/O records per page of ``/runs/{id}/io``."""
_IO_KINDS = {RecordKind.INSTRUMENT_COMMAND, RecordKind.INSTRUMENT_RESPONSE, RecordKind.READING}


@dataclass(frozen=True)
class RunHeader:
    run_id: str
    protocol: str
    version: str
    coi: str | None
    din: str | None
    state: str
    ended: str | None
    """The run's exit status once it has ended."""
    current_step: str | None
    simulated: bool
    started: datetime
    last_seq: int
    last_time_s: float
    """Process time of the run's last record (epoch s)."""


@dataclass(frozen=True)
class StepShown:
    """A step of the timeline: the batch record's section, and what the page adds."""

    section: StepSection
    expected_h: float
    current: bool


@dataclass(frozen=True)
class CommandButton:
    """One of Hold/Restart/Stop/Abort: enabled when the state allows it and the viewer
    holds its permission; ``why_not`` says which of the two is missing."""

    name: str
    label: str
    allowed: bool
    permitted: bool

    @property
    def enabled(self) -> bool:
        return self.allowed and self.permitted

    @property
    def why_not(self) -> str:
        if not self.allowed:
            return "the run's state does not allow it"
        if not self.permitted:
            return "your role may not"
        return ""


@dataclass(frozen=True)
class RequestShown:
    """A command requested from another terminal and what became of it."""

    request_id: str
    command: str
    by: str
    reason: str
    requested: datetime | None
    status: str
    outcome: str | None
    run_seq: int | None

    @property
    def text(self) -> str:
        label = self.command.capitalize()
        if self.status == "pending":
            return f"{label} requested by {self.by} — waiting for the controller"
        if self.status == "applied":
            where = f" (run record #{self.run_seq})" if self.run_seq is not None else ""
            return f"{label} requested by {self.by}: applied{where}"
        if self.status == "refused":
            return f"{label} requested by {self.by}: refused: {self.outcome or ''}"
        return f"{label} requested by {self.by}: expired ({self.outcome or 'not taken up'})"


@dataclass(frozen=True)
class RunView:
    header: RunHeader
    steps: list[StepShown]
    commands: list[CommandButton]
    requests: list[RequestShown]


@dataclass(frozen=True)
class IoLine:
    seq: int
    when: datetime
    text: str


@dataclass(frozen=True)
class IoPage:
    step: str
    lines: list[IoLine]
    next_from: int | None
    """The seq the next page starts at, or None on the last page."""


def state_of(records: Sequence[Record]) -> str:
    """The run's ISA-88 state: the last state change's, Idle before any."""
    for record in reversed(records):
        if isinstance(record.payload, rec.StateChange):
            return record.payload.to_state
    return State.IDLE.value


def current_state(conn: Conn, run_id: str) -> str:
    """The run's ISA-88 state now, from its last state change (Idle before any)."""
    row = last_row_of_kind(conn, run_id, RecordKind.STATE_CHANGE.value)
    payload = None if row is None else Record.from_row(run_id, row).payload
    return payload.to_state if isinstance(payload, rec.StateChange) else State.IDLE.value


def _header(records: Sequence[Record], steps: Sequence[StepShown]) -> RunHeader:
    first = records[0]
    started = first.payload
    if not isinstance(started, rec.RunStarted):
        raise CellautoError(
            f"record 0 of run {first.run_id} is {first.kind.value}, not run_started;"
            " run `cellauto verify`"
        )
    params = started.parameters
    ended = next((r.payload for r in records if isinstance(r.payload, rec.RunEnded)), None)
    current = next((s.section.name for s in steps if s.current), None)
    last = records[-1]
    return RunHeader(
        run_id=first.run_id,
        protocol=started.protocol_name,
        version=started.protocol_version,
        coi=str(params["coi"]) if params.get("coi") is not None else None,
        din=str(params["din"]) if params.get("din") is not None else None,
        state=state_of(records),
        ended=None if ended is None else ended.exit_status,
        current_step=current,
        simulated=started.simulated,
        started=first.process_time,
        last_seq=last.seq,
        last_time_s=last.process_time_s,
    )


def _steps(records: Sequence[Record]) -> list[StepShown]:
    started = records[0].payload
    expected = (
        {plan.name: plan.expected_duration_h for plan in started.steps}
        if isinstance(started, rec.RunStarted)
        else {}
    )
    sections, _ = steps_of(records)
    return [
        StepShown(
            section=section,
            expected_h=expected.get(section.name, 0.0),
            current=section.outcome == "in progress",
        )
        for section in sections
    ]


def command_permission(name: str, *, after_deviation: bool) -> Permission:
    """The permission command ``name`` needs: a Restart of a run held by a deviation
    needs ``run.restart_after_deviation`` (the controller refuses it without a
    supervisor's approval, which only such a requester's request carries)."""
    if name == "restart" and after_deviation:
        return Permission.RUN_RESTART_AFTER_DEVIATION
    return COMMAND_PERMISSION[name]


def command_buttons(
    state: str, ended: bool, roles: Collection[str], *, after_deviation: bool = False
) -> list[CommandButton]:
    """Hold/Restart/Stop/Abort for a run in ``state`` (held by a deviation or not) and a
    viewer with ``roles``."""
    try:
        allowed = set() if ended else set(allowed_commands(State(state)))
    except ValueError:  # a state this version does not know: nothing is offered
        allowed = set()
    may = frozenset() if Role.ADMINISTRATOR in roles else permissions_of(roles)
    return [
        CommandButton(
            name=name,
            label=name.capitalize(),
            allowed=Command(name.capitalize()) in allowed,
            permitted=command_permission(name, after_deviation=after_deviation) in may,
        )
        for name in COMMAND_PERMISSION
    ]


def read_requests(conn: Conn, run_id: str, limit: int = 5) -> list[RequestShown]:
    """The run's latest command requests (newest first), with who asked and why."""
    columns = ", ".join(RequestRow._fields)
    try:
        rows = conn.execute(
            f"SELECT {columns} FROM run_requests WHERE run_id = ? ORDER BY site_seq DESC LIMIT ?",
            (run_id, limit),
        ).fetchall()
    except sqlite3.OperationalError:  # a file older than remote commands: none
        return []
    shown = []
    for raw in rows:
        row = RequestRow(*raw)
        by, reason, when = "?", "", None
        try:
            found = stored_site_record(conn, row.site_seq)
        except CellautoError:
            found = None  # a damaged record: shown without its requester
        if found is not None and isinstance(found.payload, RunCommandRequested):
            by, reason = found.payload.by, found.payload.reason
            when = datetime.fromtimestamp(found.wall_time_ns / 1e9).astimezone()
        shown.append(
            RequestShown(
                request_id=row.request_id,
                command=row.command,
                by=by,
                reason=reason,
                requested=when,
                status=row.status,
                outcome=row.outcome,
                run_seq=row.run_seq,
            )
        )
    return shown


def run_records(journal: Journal, run_id: str) -> list[Record]:
    """Every record of the run (RunNotFoundError: no such run, the page is 404)."""
    records = journal.records(run_id)
    if not records:
        raise RunNotFoundError(f"run {run_id} has no records")
    return records


def run_view(
    journal: Journal,
    run_id: str,
    roles: Collection[str],
    records: Sequence[Record] | None = None,
) -> RunView:
    """The run page's content for a viewer with ``roles`` (``records``: the run's, if
    the caller holds them already)."""
    if records is None:
        records = run_records(journal, run_id)
    if not records:
        raise RunNotFoundError(f"run {run_id} has no records")
    steps = _steps(records)
    header = _header(records, steps)
    conn = journal.read_connection()
    after_deviation = header.state == State.HELD and hold_deviation(conn, run_id) is not None
    return RunView(
        header=header,
        steps=steps,
        commands=command_buttons(
            header.state, header.ended is not None, roles, after_deviation=after_deviation
        ),
        requests=read_requests(conn, run_id),
    )


def io_page(journal: Journal, run_id: str, step: str, start_seq: int = 0) -> IoPage:
    """The step's instrument commands, responses and readings from ``start_seq`` on, in
    words, at most :data:`IO_PAGE` of them."""
    lines: list[IoLine] = []
    next_from = None
    for record in journal.records(run_id, _IO_KINDS):
        if record.seq < start_seq or getattr(record.payload, "step", None) != step:
            continue
        if len(lines) == IO_PAGE:
            next_from = record.seq
            break
        lines.append(IoLine(record.seq, record.process_time, describe_io(record).strip()))
    return IoPage(step=step, lines=lines, next_from=next_from)


def when(process_time_s: float) -> datetime:
    """A process time as a UTC datetime (what the templates print)."""
    return utc_from_epoch_s(process_time_s)
