"""A run's claim held by a controller service counts as gone once that controller is
marked lost or stopped (``controllers.status``), wherever its process runs."""

from __future__ import annotations

import pytest

from cellauto.errors import RunOwnedError
from cellauto.records import Journal, _owners
from cellauto.records import backend as db
from cellauto.records.backend import Location
from cellauto.records.payloads import Alarm

pytestmark = pytest.mark.postgresql


def _controller_row(url: str, name: str, status: str) -> None:
    conn = db.open_backend(url).connect(create=False, timeout_s=5.0)
    try:
        conn.execute(
            "INSERT INTO controllers (name, host, pid, process_start, presence_key, line, assets,"
            " capacity, started_wall_ns, heartbeat_wall_ns, stopped_wall_ns, status)"
            " VALUES (?, 'elsewhere', 1, NULL, 7, 'line', '[]', 1, 0, 0, NULL, ?)"
            " ON CONFLICT (name) DO UPDATE SET status = excluded.status",
            (name, status),
        )
    finally:
        conn.close()


def test_a_claim_of_a_lost_controller_is_taken_over_and_names_why(
    pg_location: Location,
) -> None:
    url = pg_location.describe()
    Journal(url).close()  # created
    _controller_row(url, "alpha", "live")
    with Journal(url) as first, Journal(url) as second:
        _owners.set_controller_name("alpha")
        try:
            run = first.begin_run("run-a", lambda: 0.0)
        finally:
            _owners.set_controller_name(None)
        run.append(Alarm(source="test", severity="info", message="first record"))
        first.flush()
        with pytest.raises(RunOwnedError):  # alpha is live: its claim stands
            second.resume_run("run-a", lambda: 1.0)
        _controller_row(url, "alpha", "lost")
        resumed = second.resume_run("run-a", lambda: 1.0)
        assert resumed.claim is not None
        assert (resumed.claim.epoch, resumed.claim.why) == (2, "controller lost")
        conn = db.open_backend(url).connect(create=False, timeout_s=5.0)
        try:
            owner = conn.execute(
                "SELECT controller, epoch FROM run_owners WHERE run_id = 'run-a'"
            ).fetchone()
        finally:
            conn.close()
        assert tuple(owner) == (None, 2)  # a claim by `cellauto resume`: no service


def test_claims_and_heartbeats_on_postgresql_are_on_the_servers_clock(
    pg_location: Location,
) -> None:
    """Controllers on several machines compare claims on one clock: the server's. A
    heartbeat written with this machine's clock far behind, and a look with it far ahead,
    change nothing: the claim stays fresh and live."""
    url = pg_location.describe()
    Journal(url).close()  # created
    with Journal(url) as journal:
        journal.begin_run("run-c", lambda: 0.0)
        conn = db.open_backend(url).connect(create=False, timeout_s=5.0)
        try:
            db.begin_write(conn)
            _owners.beat(conn, 1, [("run-c", 1)])  # this machine's clock: 1 ns after 1970
            conn.execute("COMMIT")
            started, beat = conn.execute(
                "SELECT started_wall_ns, heartbeat_wall_ns FROM run_owners WHERE run_id = 'run-c'"
            ).fetchone()
            assert started > 10**18 and beat >= started
            with pytest.raises(RunOwnedError):  # a clock 1,000 years ahead: still live
                _owners.check_unowned(conn, pg_location, "run-c", stale_s=30.0, now_ns=10**20)
        finally:
            conn.close()
