"""A hung controller (SIGSTOP): its presence lock stays held, its heartbeat goes stale.

The survivor's sweep (``--sweep-s``) marks it lost once its heartbeat is older than
``--stale-s`` on the server's clock, and takes its batch over. When the hung controller
wakes (SIGCONT) it finds itself marked lost: its own records of the batch are fenced
out, it stops with exit status 1 (for its supervisor to restart it), and the batch
completes once, by the survivor.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from cellauto.records.backend import Location
from cellauto.records.site_store import SiteStore
from tests.controller.site import Controller, served_demo_line, submit, wait_until
from tests.controller.test_failover import _audit, _owner

pytestmark = pytest.mark.postgresql

FAST = ("--stale-s", "3", "--sweep-s", "0.5")


def test_a_hung_controller_is_taken_over_when_its_heartbeat_is_stale_and_then_stops(
    pg_location: Location, tmp_path: Path
) -> None:
    url = pg_location.describe()
    SiteStore(url, create=True).close()
    with (
        served_demo_line(tmp_path, speed=36_000.0) as (line, actions),
        Controller(url, line, "alpha", tmp_path, *FAST) as alpha,
        Controller(url, line, "beta", tmp_path, *FAST) as beta,
    ):
        alpha.wait_for("controller alpha of line")
        beta.wait_for("controller beta of line")
        run_id = submit(url, "culture_days=7")
        first, _ = wait_until(lambda: _owner(url, run_id), 60.0, "the run's claim")
        hung, survivor = (alpha, beta) if first == "alpha" else (beta, alpha)
        hung.wait_for(f"run {run_id} started")
        hung.process.send_signal(signal.SIGSTOP)
        try:
            survivor.wait_for(f"controller {hung.name} lost (no heartbeat)")
            survivor.wait_for(f"run {run_id} taken over from controller {hung.name}")
            assert _owner(url, run_id) == (survivor.name, 2)
        finally:
            hung.process.send_signal(signal.SIGCONT)
        hung.wait_for(f"controller {hung.name} was marked lost by its peers")
        assert hung.process.wait(timeout=60) == 1
        survivor.wait_for(f"run {run_id} ended Complete", 120.0)
        assert survivor.stop() == 0
    _audit(url, run_id, actions)
