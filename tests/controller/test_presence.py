"""A controller's presence: hung (SIGSTOP), cut off (a dead link: it fences itself).

A hung controller (SIGSTOP): its presence lock stays held, its heartbeat goes stale.

The survivor's sweep (``--sweep-s``) marks it lost once its heartbeat is older than
``--stale-s`` on the server's clock, and takes its batch over. When the hung controller
wakes (SIGCONT) it fences itself (no commit for longer than ``--self-fence-s``: exit
status 3) or finds itself marked lost (exit status 1), whichever it sees first; its own
records of the batch are fenced out, and the batch completes once, by the survivor.

A controller cut off from the server (its connections go through a TCP proxy the test
closes) cannot commit: past ``--self-fence-s`` it fences itself (exit status 3, nothing
written after), a peer takes its batch over, and the batch completes once.

A controller whose control connection drops and comes back within its peers' grace
takes a fresh presence key and keeps its runs: no takeover.
"""

from __future__ import annotations

import signal
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from cellauto.controller.fencing import EXIT_FENCED
from cellauto.controller.presence import PRESENCE_SPACE
from cellauto.records import Journal, RecordKind, verify_run
from cellauto.records import backend as db
from cellauto.records.backend import Location
from cellauto.records.site_store import SiteStore
from tests.controller.proxy import TcpProxy
from tests.controller.site import Controller, owner, served_demo_line, submit, wait_until
from tests.controller.test_failover import _audit

pytestmark = pytest.mark.postgresql

#: Short enough for a quick takeover, long enough for a loaded machine (two xdist workers
#: on two cores): both controllers run with them (which one hangs is known only once one
#: claims the run), and the survivor's heartbeat, a task of its event loop, waits while
#: the loop resumes the batch it takes over; with --self-fence-s 2 a starved survivor
#: once fenced itself there (2.2 s). --self-fence-s must stay below --stale-s.
FAST = ("--stale-s", "6", "--self-fence-s", "4", "--sweep-s", "0.5")


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
        first, _ = wait_until(lambda: owner(url, run_id), 60.0, "the run's claim")
        hung, survivor = (alpha, beta) if first == "alpha" else (beta, alpha)
        hung.wait_for(f"run {run_id} started")
        hung.process.send_signal(signal.SIGSTOP)
        try:
            survivor.wait_for(f"controller {hung.name} lost (no heartbeat)")
            survivor.wait_for(f"run {run_id} taken over from controller {hung.name}")
            assert owner(url, run_id) == (survivor.name, 2)
        finally:
            hung.process.send_signal(signal.SIGCONT)
        # awake, it stops: it fences itself (no commit for --self-fence-s: usually first)
        # or finds itself marked lost by its peers, whichever it sees first
        code = hung.process.wait(timeout=60)
        if code == EXIT_FENCED:
            assert f"controller {hung.name} fenced itself" in hung.output()
        else:
            assert code == 1, hung.output()[-3000:]
            assert f"controller {hung.name} was marked lost by its peers" in hung.output()
        survivor.wait_for(f"run {run_id} ended Complete", 120.0)
        assert survivor.stop() == 0
    _audit(url, run_id, actions)


def test_a_controller_cut_off_from_the_journal_fences_itself_and_a_peer_takes_over(
    pg_location: Location, tmp_path: Path
) -> None:
    url = pg_location.describe()
    SiteStore(url, create=True).close()
    server = urlsplit(url)
    assert server.hostname is not None and server.port is not None
    proxy = TcpProxy((server.hostname, server.port))
    with (
        served_demo_line(tmp_path, speed=36_000.0) as (line, actions),
        Controller(proxy.url(url), line, "alpha", tmp_path, "--self-fence-s", "2") as alpha,
    ):
        alpha.wait_for("controller alpha of line")
        run_id = submit(url, "culture_days=7")
        alpha.wait_for(f"run {run_id} started")
        with Controller(url, line, "beta", tmp_path) as beta:
            beta.wait_for("controller beta of line")
            proxy.cut()
            alpha.wait_for("controller alpha fenced itself")
            assert alpha.process.wait(timeout=60) == EXIT_FENCED
            beta.wait_for(f"run {run_id} taken over from controller alpha")
            assert owner(url, run_id) == ("beta", 2)
            beta.wait_for(f"run {run_id} ended Complete", 120.0)
            assert beta.stop() == 0
    _audit(url, run_id, actions)


def _presence_key(url: str, name: str) -> int:
    conn = db.open_backend(url).connect(create=False, timeout_s=5.0)
    try:
        row = conn.execute("SELECT presence_key FROM controllers WHERE name = ?", (name,))
        return int(row.fetchone()[0])
    finally:
        conn.close()


def _watched(url: str, key: int) -> bool:
    """Whether a peer waits on the presence lock ``key`` (its watch is in place)."""
    conn = db.open_backend(url).connect(create=False, timeout_s=5.0)
    try:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND classid = ? AND objid = ?",
            (PRESENCE_SPACE, key),
        ).fetchone()
        return int(row[0]) > 0
    finally:
        conn.close()


def test_a_control_connection_back_within_the_grace_keeps_its_runs(
    pg_location: Location, tmp_path: Path
) -> None:
    url = pg_location.describe()
    SiteStore(url, create=True).close()
    server = urlsplit(url)
    assert server.hostname is not None and server.port is not None
    proxy = TcpProxy((server.hostname, server.port))
    with (
        served_demo_line(tmp_path, speed=36_000.0) as (line, _actions),
        # its self-fence must not end it while its control connection is made again: 4 s
        # leaves a loaded machine room (its heartbeat, a loop task, beats every 1 s)
        Controller(proxy.url(url), line, "alpha", tmp_path, "--self-fence-s", "4") as alpha,
    ):
        alpha.wait_for("controller alpha of line")
        run_id = submit(url, "culture_days=7")
        alpha.wait_for(f"run {run_id} started")
        with Controller(url, line, "beta", tmp_path, "--grace-s", "5") as beta:
            beta.wait_for("controller beta of line")
            key = _presence_key(url, "alpha")
            wait_until(lambda: _watched(url, key), 60.0, "beta to watch alpha's presence")
            assert proxy.drop(b":presence") == 1  # alpha's control connection only
            alpha.wait_for("control connection dropped and made again within the grace")
            beta.wait_for("controller alpha came back within the grace")
            assert _presence_key(url, "alpha") != key
            alpha.wait_for(f"run {run_id} ended Complete", 120.0)
            assert beta.stop() == 0
        assert alpha.stop() == 0
    assert "taken over" not in beta.output()
    assert owner(url, run_id) == ("alpha", 1)
    with Journal(url, create=False) as journal:
        assert len(journal.records(run_id, {RecordKind.RUN_ENDED})) == 1
        report = verify_run(journal, run_id)
    assert report.intact and report.sealed, report
