"""The line overview's read model: built from scratch or brought up to date row by row,
it says the same; progress and the estimated end follow the run's step plan; alarms,
tasks, deviations and a lost controller are counted from the site's tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from cellauto.records import Journal
from cellauto.records import backend as db
from cellauto.records.backend import Conn
from cellauto.sim.simulate import simulate
from cellauto.web.changes import NewRow, open_reader, rows_after
from cellauto.web.line_model import LineModel, state_class
from tests.web.test_changes import START_S, Clock, alarm, begin, deviation, reading, state, step

REPO = Path(__file__).resolve().parents[2]
HOUR_NS = 3600 * 10**9


@pytest.fixture(scope="module")
def car_t(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A journal with one complete simulated CAR-T run and one NK run."""
    db = tmp_path_factory.mktemp("line") / "line.db"
    simulate(REPO / "protocols" / "car_t_autologous.py", db=db, seed=7, patient="typical")
    simulate(REPO / "protocols" / "nk_expansion.py", db=db, seed=3, patient="typical")
    return db


def _head(conn: Conn) -> int:
    order = "id" if db.is_postgresql(conn) else "rowid"  # the append order, as scan reads it
    return int(conn.execute(f"SELECT max({order}) FROM records").fetchone()[0])


def test_applying_the_rows_gives_what_a_scan_from_scratch_gives(car_t: Path) -> None:
    conn = open_reader(car_t)
    head = _head(conn)
    whole = LineModel()
    whole.scan(conn, head)
    assert len(whole.runs) == 2
    for start in (0, head // 3, head - 5):
        model = LineModel()
        model.scan(conn, start)
        position = start
        while page := rows_after(conn, position, 97):
            model.apply(page)
            position = page[-1].rowid
        assert [model.view(r) for r in sorted(model.runs)] == [
            whole.view(r) for r in sorted(whole.runs)
        ]
    conn.close()


def test_a_complete_car_t_run_shows_its_batch_and_ends_complete(car_t: Path) -> None:
    conn = open_reader(car_t)
    model = LineModel()
    model.scan(conn, _head(conn))
    views = model.listed(every=True, now_ns=0)
    car = next(v for v in views if v.protocol == "car-t-autologous")
    assert (car.coi, car.din, car.simulated) == ("W123426A1B2C3", "W123426000042", True)
    assert (car.state, car.state_class, car.ended, car.progress_pct) == (
        "Complete",
        "state-complete",
        True,
        100,
    )
    assert car.eta_s is None and car.step is not None and car.step_no == car.steps
    conn.close()


def _row(run: str, seq: int, kind: str, hours: float, body: str | None = None) -> NewRow:
    return NewRow(seq + 1, run, seq, kind, START_S + hours * 3600, int(hours * HOUR_NS), body)


def test_progress_and_estimated_end_follow_the_step_plan(tmp_path: Path) -> None:
    db = tmp_path / "line.db"
    clock = Clock()
    with Journal(db) as journal:
        run = begin(journal, "run-p", clock, coi="W123426A1B2C3")  # seed 1 h, grow 4 h, harvest 1 h
        run.append(step("seed", 0))
        clock.advance(1)
        run.append(step("grow", 1))
        clock.advance(2)
        run.append(reading(), durable=True)
        conn = open_reader(db)
        model = LineModel()
        model.scan(conn, _head(conn))
        view = model.view("run-p")
        assert (view.step, view.step_no, view.steps) == ("grow", 2, 3)
        assert view.progress_pct == 50  # (1 + 2) of 6 expected hours
        assert view.eta_s == pytest.approx(clock.now + 3 * 3600)
        clock.advance(3)  # 5 h into a step expected to take 4: it is late, not beyond
        run.append(reading(), durable=True)
        model.apply(rows_after(conn, 0, 1000)[-1:])
        view = model.view("run-p")
        assert view.progress_pct == round(100 * 5 / 6)
        assert view.eta_s == pytest.approx(clock.now + 3600)
        assert view.eta_text and view.state_class == "state-running"
        run.append(state("Held", "Running"), durable=True)
        model.apply(rows_after(conn, 0, 1000)[-1:])
        assert model.view("run-p").state_class == "state-holding"
    conn.close()


def test_alarms_deviations_tasks_and_a_lost_controller_are_counted(tmp_path: Path) -> None:
    db = tmp_path / "line.db"
    with Journal(db) as journal:
        run = begin(journal, "run-q", Clock())
        run.append(alarm("pH probe drift suspected", "major"))
        run.append(alarm("door open", "minor"))
        run.append(deviation(), durable=True)
        conn = open_reader(db)
        model = LineModel(stale_s=30)
        model.scan(conn, _head(conn))
        view = model.view("run-q")
        assert (view.alarms_open, view.worst_alarm, view.deviations_open) == (2, "major", 1)
        assert model.counts() == (0, 2) and not view.controller_lost and view.attention
        model.acked = {("run-q", 2)}
        model.closed_deviations = {("run-q", 4)}
        model.open_tasks = {"T1": "run-q"}
        view = model.view("run-q")
        assert (view.alarms_open, view.worst_alarm, view.deviations_open) == (1, "minor", 0)
        assert view.tasks_open == 1 and model.counts() == (1, 1)
        beat = conn.execute("SELECT heartbeat_wall_ns FROM run_owners").fetchone()[0]
        dirty = model.owners(conn, beat + 31 * 10**9)
        assert dirty.runs == {"run-q"} and model.view("run-q").controller_lost
        assert not model.owners(conn, beat + 32 * 10**9)  # no news: nothing to send
    dirty = model.owners(conn, beat + 33 * 10**9)  # the controller let the run go
    assert dirty.runs == {"run-q"} and not model.view("run-q").controller_lost
    conn.close()


def test_the_overview_lists_active_and_recent_runs_and_an_unreadable_body_marks_the_row() -> None:
    model = LineModel()
    old_end = 1 * HOUR_NS
    model.apply(
        [
            _row("old", 0, "run_started", 0, '{"payload": {}}'),
            _row("old", 1, "run_ended", 1, '{"payload": {"exit_status": "complete"}}'),
            _row("new", 0, "state_change", 2, '{"payload": {"to_state": "Running"}}'),
            _row("new", 1, "alarm", 2, "not json"),
        ]
    )
    now = old_end + 8 * 24 * HOUR_NS
    assert [v.run_id for v in model.listed(every=False, now_ns=now)] == ["new"]
    assert [v.run_id for v in model.listed(every=True, now_ns=now)] == ["new", "old"]
    assert model.view("new").damaged and model.view("old").damaged  # run_started lacked fields
    assert model.view("new").state == "Running"
    assert state_class("Aborting") == "state-aborted" and state_class("Idle") == "state-idle"


def test_an_acknowledgement_in_the_site_chain_is_read_on_refresh(journal: Path) -> None:
    from cellauto.site.alarms import acknowledge_alarm
    from cellauto.site.auth import authenticate
    from cellauto.site.store import open_site_store
    from tests.site.chain import TERMINAL
    from tests.site.conftest import own_password

    with Journal(journal) as writer:
        run = begin(writer, "run-k", Clock())
        seq, _ = run.append(alarm("pH probe drift suspected"), durable=True)
    conn = open_reader(journal)
    model = LineModel()
    model.scan(conn, _head(conn))
    assert model.view("run-k").alarms_open == 1
    assert not model.refresh(conn, site_moved=True, now_ns=0)  # nothing new
    with open_site_store(journal) as store:
        who = authenticate(store, "ann", own_password("ann"), purpose="t", terminal=TERMINAL)
        acknowledge_alarm(store, who, "run-k", seq, comment="probe recalibrated")
    assert not model.refresh(conn, site_moved=False, now_ns=0).alarms  # the site did not move
    dirty = model.refresh(conn, site_moved=True, now_ns=0)
    assert dirty.alarms and dirty.runs == {"run-k"}
    assert model.view("run-k").alarms_open == 0 and model.counts() == (0, 0)
    conn.close()
