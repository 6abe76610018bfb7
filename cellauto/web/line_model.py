"""The line overview's read model: every run at a glance, kept in memory.

Built once at start from the overview's record kinds (one scan; ``Journal.runs()`` would
read each run's tail), then brought up to date by :meth:`LineModel.apply` with the rows
each :class:`~cellauto.web.changes.Change` brings (O(new rows)) and by
:meth:`LineModel.refresh` with the small tables a person's acts change (open tasks,
alarm acknowledgements, deviations, run owners). Both return what changed, for the live
updates. A row whose record body cannot be read is shown as damaged ("run verify"),
never breaks the page.

Not thread-safe: the hub calls it under its lock.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from cellauto.records import backend as db
from cellauto.records._owners import stale_interval_s
from cellauto.records._schema import is_missing_table
from cellauto.records.backend import Conn
from cellauto.web.changes import OVERVIEW_KINDS, NewRow

__all__ = ["RECENT_S", "Dirty", "LineModel", "RunRow", "RunView", "state_class"]

RECENT_S = 7 * 24 * 3600
"""Runs ended within this many seconds are listed (``?ended=all``: every run)."""
ACTIVE_STATES = {"Running", "Holding", "Held", "Restarting", "Stopping", "Aborting"}
_CLASSES = {
    "Running": "running",
    "Holding": "holding",
    "Held": "holding",
    "Restarting": "restarting",
    "Stopping": "stopped",
    "Stopped": "stopped",
    "Aborting": "aborted",
    "Aborted": "aborted",
    "Complete": "complete",
}


def state_class(state: str) -> str:
    """The colour class of an ISA-88 state (``state-running``, ``state-holding``, ...)."""
    return "state-" + _CLASSES.get(state, "idle")


@dataclass
class RunRow:
    """One run as the overview keeps it (derived figures: :class:`RunView`)."""

    run_id: str
    protocol: str = "?"
    version: str = "?"
    coi: str | None = None
    din: str | None = None
    simulated: bool = False
    operators: str = ""
    started_s: float = 0.0
    started_wall_ns: int = 0
    steps: list[tuple[str, float]] = field(default_factory=list)
    step_index: int | None = None
    step_started_s: float | None = None
    state: str = "Idle"
    exit_status: str | None = None
    ended_wall_ns: int | None = None
    last_seq: int = -1
    last_s: float = 0.0
    last_wall_ns: int = 0
    alarms: dict[int, tuple[str, str]] = field(default_factory=dict)
    """Alarm record seq -> (severity, message)."""
    deviations: set[int] = field(default_factory=set)
    damaged: bool = False


@dataclass(frozen=True)
class RunView:
    """What a row of the overview shows."""

    run_id: str
    protocol: str
    version: str
    coi: str | None
    din: str | None
    simulated: bool
    state: str
    state_class: str
    ended: bool
    step: str | None
    step_no: int | None
    steps: int
    progress_pct: int
    eta_s: float | None
    """Estimated end, process time (simulated runs: virtual), None when ended/unknown."""
    alarms_open: int
    worst_alarm: str | None
    tasks_open: int
    deviations_open: int
    controller_lost: bool
    damaged: bool
    last_wall_ns: int

    @property
    def eta_text(self) -> str:
        """The estimated end as a local date and time ("" when there is none)."""
        if self.eta_s is None:
            return ""
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(self.eta_s))

    @property
    def attention(self) -> bool:
        """A person is needed: a task waits or an alarm is unacknowledged."""
        return self.tasks_open > 0 or self.alarms_open > 0


@dataclass
class Dirty:
    """What an update changed: rows of runs, a run's own page, the inboxes, the badges."""

    runs: set[str] = field(default_factory=set)
    run_heads: set[str] = field(default_factory=set)
    tasks: bool = False
    alarms: bool = False
    new_tasks: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.runs or self.run_heads or self.tasks or self.alarms)

    def merge(self, other: Dirty) -> None:
        self.runs |= other.runs
        self.run_heads |= other.run_heads
        self.tasks = self.tasks or other.tasks
        self.alarms = self.alarms or other.alarms
        self.new_tasks += [t for t in other.new_tasks if t not in self.new_tasks]


def _select(conn: Conn, sql: str) -> list[Any]:
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.OperationalError as exc:
        if is_missing_table(exc):
            return []
        raise


def _payload(body: str | None) -> dict[str, Any]:
    if body is None:
        raise ValueError("no body")
    found = orjson.loads(body)["payload"]
    if not isinstance(found, dict):
        raise ValueError("payload is not an object")
    return found


class LineModel:
    """Every run of the journal, as the overview shows it."""

    def __init__(self, *, stale_s: float | None = None) -> None:
        self.runs: dict[str, RunRow] = {}
        self.open_tasks: dict[str, str] = {}
        """Open task id -> its run."""
        self.acked: set[tuple[str, int]] = set()
        self.closed_deviations: set[tuple[str, int]] = set()
        self.person_deviations: dict[str, int] = {}
        """Open deviations raised by a person or QC (no run record), per run."""
        self.heartbeats: dict[str, int | None] = {}
        """Run -> its owner's last heartbeat (None: released)."""
        self.lost: set[str] = set()
        self.stale_ns = int(stale_interval_s(stale_s) * 1e9)

    # -- building and updating ----------------------------------------------------------
    def scan(self, conn: Conn, upto_rowid: int) -> None:
        """Read every overview record up to ``upto_rowid`` and the small tables."""
        marks = ", ".join("?" * len(OVERVIEW_KINDS))
        order = "id" if db.is_postgresql(conn) else "rowid"  # the append order
        rows = conn.execute(
            f"SELECT {order}, run_id, seq, kind, process_time_s, wall_time_ns, body FROM records"
            f" WHERE kind IN ({marks}) AND {order} <= ? ORDER BY {order}",
            (*OVERVIEW_KINDS, upto_rowid),
        ).fetchall()
        self.apply(NewRow(*r) for r in rows)
        for run_id, row in self.runs.items():
            last = conn.execute(
                "SELECT seq, process_time_s, wall_time_ns FROM records WHERE run_id = ?"
                " ORDER BY seq DESC LIMIT 1",
                (run_id,),
            ).fetchone()
            if last is not None and last[0] > row.last_seq:
                row.last_seq, row.last_s, row.last_wall_ns = last
        self.refresh(conn, site_moved=True, now_ns=time.time_ns())

    def apply(self, rows: Iterable[NewRow]) -> Dirty:
        """Bring the model up to date with new run records; what changed."""
        dirty = Dirty()
        for new in rows:
            row = self.runs.get(new.run_id)
            if row is None:
                row = self.runs[new.run_id] = RunRow(new.run_id)
            if new.seq > row.last_seq:
                row.last_seq, row.last_s, row.last_wall_ns = (
                    new.seq,
                    new.process_time_s,
                    new.wall_time_ns,
                )
            dirty.run_heads.add(new.run_id)
            dirty.runs.add(new.run_id)  # its last record, progress and estimate moved
            if new.kind not in OVERVIEW_KINDS:
                continue
            try:
                self._one(row, new, _payload(new.body), dirty)
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, IndexError):
                row.damaged = True
        return dirty

    def _one(self, row: RunRow, new: NewRow, payload: dict[str, Any], dirty: Dirty) -> None:
        if new.kind == "run_started":
            params = payload.get("parameters") or {}
            row.protocol = str(payload["protocol_name"])
            row.version = str(payload["protocol_version"])
            row.coi = str(params["coi"]) if "coi" in params else None
            row.din = str(params["din"]) if "din" in params else None
            row.simulated = bool(payload.get("simulated", False))
            row.operators = str(payload.get("operators", ""))
            row.started_s, row.started_wall_ns = new.process_time_s, new.wall_time_ns
            row.steps = [
                (str(s["name"]), float(s["expected_duration_h"])) for s in payload["steps"]
            ]
        elif new.kind == "step_started":
            row.step_index = int(payload["index"])
            row.step_started_s = new.process_time_s
        elif new.kind == "state_change":
            row.state = str(payload["to_state"])
        elif new.kind == "run_ended":
            row.exit_status = str(payload["exit_status"])
            row.state = str(payload.get("final_state", row.state))
            row.ended_wall_ns = new.wall_time_ns
            if row.run_id in self.heartbeats:
                self.lost.discard(row.run_id)
        elif new.kind == "alarm":
            row.alarms[new.seq] = (str(payload["severity"]), str(payload["message"]))
            dirty.alarms = True
        elif new.kind == "deviation":
            row.deviations.add(new.seq)

    def refresh(self, conn: Conn, *, site_moved: bool, now_ns: int) -> Dirty:
        """Re-read open tasks (always), acknowledgements and deviations (when the site
        chain moved) and owners' heartbeats; what changed."""
        dirty = Dirty()
        tasks = dict(_select(conn, "SELECT task_id, run_id FROM tasks WHERE status = 'open'"))
        if tasks != self.open_tasks:
            dirty.tasks = True
            dirty.new_tasks = sorted(set(tasks) - set(self.open_tasks))
            dirty.runs |= {r for r in (*tasks.values(), *self.open_tasks.values())}
            self.open_tasks = tasks
        if site_moved:
            acked = {(r, s) for r, s in _select(conn, "SELECT run_id, run_seq FROM alarm_acks")}
            if acked != self.acked:
                dirty.alarms = True
                dirty.runs |= {r for r, _ in acked ^ self.acked}
                self.acked = acked
            closed: set[tuple[str, int]] = set()
            person: dict[str, int] = {}
            for run_id, origin, run_seq, status in _select(
                conn, "SELECT run_id, origin, run_seq, status FROM deviations"
            ):
                done = status in ("closed", "withdrawn")
                if origin == "runner" and run_seq is not None:
                    if done:
                        closed.add((run_id, int(run_seq)))
                elif not done:
                    person[run_id] = person.get(run_id, 0) + 1
            if closed != self.closed_deviations or person != self.person_deviations:
                dirty.runs |= {r for r, _ in closed ^ self.closed_deviations}
                dirty.runs |= set(person) ^ set(self.person_deviations)
                dirty.runs |= {r for r in person if person[r] != self.person_deviations.get(r)}
                self.closed_deviations, self.person_deviations = closed, person
        dirty.merge(self.owners(conn, now_ns))
        return dirty

    def owners(self, conn: Conn, now_ns: int) -> Dirty:
        """Which active runs' controllers stopped beating (read now; nothing else need
        change for a controller to be lost)."""
        self.heartbeats = {
            r: (None if released is not None else beat)
            for r, beat, released in _select(
                conn, "SELECT run_id, heartbeat_wall_ns, released_wall_ns FROM run_owners"
            )
        }
        lost = {
            r
            for r, beat in self.heartbeats.items()
            if beat is not None
            and now_ns - beat > self.stale_ns
            and r in self.runs
            and self.runs[r].ended_wall_ns is None
        }
        dirty = Dirty(runs=lost ^ self.lost)
        self.lost = lost
        return dirty

    # -- reading ------------------------------------------------------------------------
    def view(self, run_id: str) -> RunView:
        row = self.runs[run_id]
        ended = row.ended_wall_ns is not None
        total_h = sum(h for _, h in row.steps)
        step: str | None = None
        progress = 0.0
        eta: float | None = None
        if row.step_index is not None and 0 <= row.step_index < len(row.steps):
            step = row.steps[row.step_index][0]
            before = sum(h for _, h in row.steps[: row.step_index])
            expected = row.steps[row.step_index][1]
            elapsed_h = max(0.0, (row.last_s - (row.step_started_s or row.last_s)) / 3600)
            done_h = before + min(elapsed_h, expected)
            progress = done_h / total_h if total_h > 0 else 0.0
            if not ended:
                eta = row.last_s + (total_h - done_h) * 3600
        if ended and row.state == "Complete":
            progress = 1.0
        alarms = [sev for seq, (sev, _) in row.alarms.items() if (run_id, seq) not in self.acked]
        deviations = sum(1 for s in row.deviations if (run_id, s) not in self.closed_deviations)
        return RunView(
            run_id=run_id,
            protocol=row.protocol,
            version=row.version,
            coi=row.coi,
            din=row.din,
            simulated=row.simulated,
            state=row.state,
            state_class=state_class(row.state),
            ended=ended,
            step=step,
            step_no=None if row.step_index is None else row.step_index + 1,
            steps=len(row.steps),
            progress_pct=round(100 * min(progress, 1.0)),
            eta_s=eta,
            alarms_open=len(alarms),
            worst_alarm=_worst(alarms),
            tasks_open=sum(1 for r in self.open_tasks.values() if r == run_id),
            deviations_open=deviations + self.person_deviations.get(run_id, 0),
            controller_lost=run_id in self.lost,
            damaged=row.damaged,
            last_wall_ns=row.last_wall_ns,
        )

    def listed(self, *, every: bool, now_ns: int) -> list[RunView]:
        """The overview's rows: active runs, then those ended within :data:`RECENT_S`
        (``every``: all), newest start first."""
        since = now_ns - RECENT_S * 1_000_000_000
        keep = [
            r
            for r in self.runs.values()
            if every or r.ended_wall_ns is None or r.ended_wall_ns >= since
        ]
        keep.sort(key=lambda r: (r.ended_wall_ns is not None, -r.started_wall_ns, r.run_id))
        return [self.view(r.run_id) for r in keep]

    def counts(self) -> tuple[int, int]:
        """(open tasks, unacknowledged alarms) of the whole line."""
        alarms = sum(
            1 for r in self.runs.values() for s in r.alarms if (r.run_id, s) not in self.acked
        )
        return len(self.open_tasks), alarms


_SEVERITY = ("critical", "major", "minor", "warning", "info")


def _worst(severities: list[str]) -> str | None:
    if not severities:
        return None
    return min(severities, key=lambda s: _SEVERITY.index(s) if s in _SEVERITY else len(_SEVERITY))
