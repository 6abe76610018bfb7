"""The journal's changes as the web app's poller sees them: what another connection
commits is found (new run records by rowid, bodies of the overview's kinds only, the
site chain's head), in pages, and a file without rowids is refused by name."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from cellauto.errors import JournalOpenError
from cellauto.records import Journal
from cellauto.records import payloads as rec
from cellauto.records.run_journal import RunJournal
from cellauto.records.spec import Spec
from cellauto.web import changes
from cellauto.web.changes import Change, SqliteChanges
from tests.web.harness import DEADLINE_S

START_S = 1_767_225_600.0


class Clock:
    """Process time that moves only when told (hours)."""

    def __init__(self) -> None:
        self.now = START_S

    def __call__(self) -> float:
        return self.now

    def advance(self, hours: float) -> None:
        self.now += hours * 3600


def started(run_id: str, steps: list[tuple[str, float]], **params: object) -> rec.RunStarted:
    return rec.RunStarted(
        run_id=run_id,
        protocol_name="web-test",
        protocol_version="2",
        protocol_source_sha256=None,
        protocol_file=None,
        parameters=dict(params),
        steps=[
            rec.StepPlan(
                name=name,
                path=[name],
                resume="rerun",
                max_duration_h=None,
                max_hold_h=None,
                expected_duration_h=hours,
                checks={},
            )
            for name, hours in steps
        ],
        line="test line",
        simulated=True,
        wall_clock="real",
        seed=None,
        operator="tester",
        instruments={},
        package_versions={},
    )


def reading(value: float = 1.0) -> rec.Reading:
    return rec.Reading(
        instrument="bioreactor",
        method="read_process_values",
        arguments={},
        step=None,
        value={"ph": value},
    )


def state(to: str, before: str = "Idle") -> rec.StateChange:
    return rec.StateChange(from_state=before, to_state=to, cause="test", step=None)


def step(name: str, index: int) -> rec.StepStarted:
    return rec.StepStarted(step=name, index=index, path=[name], resume="rerun")


def alarm(message: str, severity: str = "major") -> rec.Alarm:
    return rec.Alarm(source="test", severity=severity, message=message)


def deviation() -> rec.Deviation:
    return rec.Deviation(
        step="grow", check="viability", description="low", policy=Spec(min=1).policy
    )


def begin(journal: Journal, run_id: str, clock: Clock, **params: object) -> RunJournal:
    run = journal.begin_run(run_id, clock)
    run.append(started(run_id, [("seed", 1.0), ("grow", 4.0), ("harvest", 1.0)], **params))
    run.append(state("Running"), durable=True)
    return run


def until_change(source: SqliteChanges) -> Change:
    """The next change (another connection's commit), or fail after the hang deadline."""
    found = source.wait(DEADLINE_S)
    assert found is not None, "no change seen within the deadline"
    return found


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "line.db"
    Journal(path).close()
    return path


def test_another_connections_records_are_seen_with_overview_bodies_only(db: Path) -> None:
    source = SqliteChanges(db, poll_s=0.01)
    assert source.start().rowid == 0
    assert source.wait(0) is None  # nothing committed since
    clock = Clock()
    seen: list[Change] = []

    def write() -> None:
        with Journal(db) as journal:
            run = begin(journal, "run-a", clock, coi="W123426A1B2C3")
            run.append(reading(), durable=True)

    writer = threading.Thread(target=write)
    writer.start()
    writer.join()
    while sum(len(c.rows) for c in seen) < 3:
        seen.append(until_change(source))
    rows = [r for c in seen for r in c.rows]
    assert [(r.run_id, r.seq, r.kind) for r in rows] == [
        ("run-a", 0, "run_started"),
        ("run-a", 1, "state_change"),
        ("run-a", 2, "reading"),
    ]
    assert rows[0].body is not None and "W123426A1B2C3" in rows[0].body
    assert rows[1].body is not None
    assert rows[2].body is None  # readings are not read
    assert [r.rowid for r in rows] == sorted(r.rowid for r in rows)
    assert all(c.tasks_changed for c in seen)
    source.close()


def test_a_burst_is_read_in_pages(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(changes, "PAGE_ROWS", 3)
    source = SqliteChanges(db, poll_s=0.01)
    source.start()
    with Journal(db) as journal:
        run = begin(journal, "run-b", Clock())
        for value in range(6):
            run.append(reading(value))
        run.append(reading(), durable=True)
    change = until_change(source)
    assert [r.seq for r in change.rows] == list(range(9))
    assert source.wait(0) is None
    source.close()


def test_the_site_chain_moving_is_seen(db: Path) -> None:
    from cellauto.site.accounts import bootstrap
    from cellauto.site.store import open_site_store
    from tests.site.chain import POLICY, TERMINAL
    from tests.site.conftest import ROOT_PASSWORD

    source = SqliteChanges(db, poll_s=0.01)
    assert source.start().site_seq is None
    with open_site_store(db) as store:
        bootstrap(store, "root", "Rita Admin", ROOT_PASSWORD, policy=POLICY, terminal=TERMINAL)
    change = until_change(source)
    assert change.rows == () and change.site_seq is not None and change.site_seq >= 0
    source.close()


def test_a_journal_without_rowids_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE records (run_id TEXT, seq INTEGER, kind TEXT, process_time_s REAL,"
        " wall_time_ns INTEGER, body TEXT, prev_hash TEXT, hash TEXT,"
        " PRIMARY KEY (run_id, seq)) WITHOUT ROWID"
    )
    conn.close()
    with pytest.raises(JournalOpenError, match="WITHOUT ROWID"):
        SqliteChanges(path).start()
