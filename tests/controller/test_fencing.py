"""The self-fence's pieces: the start-up checks, the watchdog, the heartbeat period."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from cellauto.cli import main
from cellauto.controller.fencing import SelfFence, check_self_fence, with_user_timeout
from cellauto.errors import CellautoError
from cellauto.records import Journal
from cellauto.records._fence import Fence


@pytest.mark.parametrize(
    ("self_fence_s", "grace_s", "stale_s", "says"),
    [
        (13.0, 2.0, 30.0, "less than 11 s"),
        (10.0, 2.0, 10.0, "less than --stale-s 10"),
        (0.0, 2.0, 30.0, "more than 0 s"),
    ],
)
def test_settings_under_which_peers_could_take_over_first_are_refused(
    self_fence_s: float, grace_s: float, stale_s: float, says: str
) -> None:
    with pytest.raises(CellautoError, match=says):
        check_self_fence(self_fence_s, grace_s=grace_s, stale_s=stale_s)
    check_self_fence(10.0, grace_s=2.0, stale_s=30.0)  # the defaults


def test_the_command_refuses_a_self_fence_longer_than_the_stale_interval(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = tmp_path / "line.toml"
    line.write_text('name = "x"\n[equipment.scanner]\nadapter = "sim"\n')
    url = "postgresql://nobody@127.0.0.1:1/none"
    code = main(["controller", "--db", url, "--line", str(line), "--stale-s", "3"])
    assert code == 1
    assert "--self-fence-s 10 must be less than --stale-s 3" in capsys.readouterr().err


def test_libpq_tcp_user_timeout_is_added_unless_given() -> None:
    url = "postgresql://u@h:5432/db?options=-csearch_path%3Ds#s"
    assert with_user_timeout(url) == (
        "postgresql://u@h:5432/db?options=-csearch_path%3Ds&tcp_user_timeout=8000#s"
    )
    given = "postgresql://u@h/db?tcp_user_timeout=100"
    assert with_user_timeout(given) == given


def _fence(limit_s: float, ages: list[float | None]) -> tuple[SelfFence, list[str]]:
    said: list[str] = []
    fence = SelfFence(limit_s, commit_age_s=lambda: ages[0], on_fence=said.append)
    return fence, said


def test_the_watchdog_fences_on_a_writer_that_no_longer_commits() -> None:
    ages: list[float | None] = [None]
    fence, _ = _fence(10.0, ages)
    assert fence.check() is None  # no run held: the writer need not commit
    ages[0] = 500.0  # runs held from now: the writer's last commit was before them
    assert fence.check() is None
    fence._held_since = fence._held_since - 11.0  # type: ignore[operator]
    assert fence.check() == "no commit of its journal writer for 11.0 s"
    fence.presence_ok()
    ages[0] = 1.0
    assert fence.check() is None


def test_the_watchdog_thread_fences_on_a_control_connection_without_heartbeat() -> None:
    fenced = threading.Event()
    fence = SelfFence(0.05, commit_age_s=lambda: None, on_fence=lambda why: fenced.set())
    fence.start()
    assert fenced.wait(60.0)
    assert fence.fenced is not None and "control connection" in fence.fenced
    fence.stop()


def test_the_writer_heartbeat_honours_a_shorter_period(tmp_path: Path) -> None:
    assert Fence(tmp_path, {}, {}, stale_s=30.0).heartbeat_s == 7.5
    assert Fence(tmp_path, {}, {}, stale_s=30.0, heartbeat_s=2.5).heartbeat_s == 2.5
    assert Fence(tmp_path, {}, {}, stale_s=4.0, heartbeat_s=2.5).heartbeat_s == 1.0


def test_the_journal_tells_the_age_of_its_last_commit_while_it_holds_runs(
    tmp_path: Path,
) -> None:
    with Journal(tmp_path / "j.db", owner_heartbeat_s=1.0) as journal:
        assert journal.commit_age_s() is None
        run = journal.begin_run("r1", lambda: 0.0)
        assert run.run_id == "r1"
        journal.flush()
        age_s = journal.commit_age_s()
        assert age_s is not None and age_s >= 0.0
