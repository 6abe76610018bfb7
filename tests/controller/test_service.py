"""``cellauto controller``: registers, takes queued runs, runs them, stops on SIGTERM."""

from __future__ import annotations

from pathlib import Path

import pytest

from cellauto.cli import main
from cellauto.records import Journal, RecordKind, verify_run
from cellauto.records import backend as db
from cellauto.records.backend import Location
from cellauto.records.site_store import SiteStore
from tests.controller.site import DEMO, Controller, served_demo_line, submit, wait_until

pytestmark = pytest.mark.postgresql

SPEED = 36_000.0


def _ended(url: str, run_id: str) -> bool:
    with Journal(url, create=False) as journal:
        return bool(journal.records(run_id, {RecordKind.RUN_ENDED}))


def test_a_controller_runs_a_queued_batch_to_its_end_and_stops_on_sigterm(
    pg_location: Location, tmp_path: Path
) -> None:
    url = pg_location.describe()
    SiteStore(url, create=True).close()
    with served_demo_line(tmp_path, speed=SPEED) as (line, _actions):
        with Controller(url, line, "alpha", tmp_path) as alpha:
            alpha.wait_for("controller alpha of line site-demo")
            # another version of the protocol file than the controller's: refused
            edited = tmp_path / "edited" / DEMO.name
            edited.parent.mkdir()
            edited.write_text(DEMO.read_text() + "\n# edited\n")
            other = submit(url, "culture_days=3", protocol=edited)
            alpha.wait_for(f"run {other} refused: protocol 'demo-expansion' in ")
            assert "another version of the file" in alpha.output()
            run_id = submit(url, "culture_days=3")
            alpha.wait_for(f"run {run_id} started")
            wait_until(lambda: _ended(url, run_id), 120.0, f"run {run_id} to end")
            alpha.wait_for(f"run {run_id} ended Complete")
            assert alpha.stop() == 0
        conn = db.open_backend(url).connect(create=False, timeout_s=5.0)
        try:
            status = conn.execute("SELECT status FROM run_queue WHERE run_id = ?", (run_id,))
            assert status.fetchone()[0] == "started"
            refused = conn.execute(
                "SELECT status, reason FROM run_queue WHERE run_id = ?", (other,)
            ).fetchone()
            assert refused[0] == "refused" and "source SHA-256" in refused[1]
            row = conn.execute("SELECT status, line FROM controllers WHERE name = 'alpha'")
            assert tuple(row.fetchone()) == ("stopped", "site-demo")
            owner = conn.execute(
                "SELECT controller, released_wall_ns FROM run_owners WHERE run_id = ?", (run_id,)
            ).fetchone()
            assert owner[0] == "alpha" and owner[1] is not None
        finally:
            conn.close()
    with Journal(url, create=False) as journal:
        assert verify_run(journal, run_id).intact


def test_the_controller_refuses_an_sqlite_journal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = tmp_path / "line.toml"
    line.write_text('name = "x"\n[equipment.scanner]\nadapter = "sim"\n')
    code = main(["controller", "--db", str(tmp_path / "j.db"), "--line", str(line)])
    assert code == 1
    assert "needs a PostgreSQL journal" in capsys.readouterr().err
