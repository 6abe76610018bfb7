"""One controller per run: claims, refusal of a live owner, takeover, the fence, release."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from cellauto.errors import FencedError, JournalOpenError, RunOwnedError
from cellauto.records import Journal, RecordKind, _owners, verify_run
from cellauto.records._owners import Owner, owner_of, process_start, this_controller
from cellauto.records._owners import _process_alive as process_alive
from cellauto.records.backend import Location
from cellauto.testing import raw_connection
from tests.records.conftest import START_S, StepClock
from tests.records.factory import payload_of
from tests.records.site_factory import stored_state

INTENT = payload_of(RecordKind.INSTRUMENT_COMMAND, {"method": "start"})
QUIET = 3600.0  # a stale interval whose heartbeat (a quarter of it) never comes in a test


def _owner(path: Location, run_id: str = "run-a") -> Owner | None:
    conn = raw_connection(path)
    try:
        return owner_of(conn, run_id)
    finally:
        conn.close()


def _begin(journal: Journal, run_id: str = "run-a", readings: int = 2) -> None:
    run = journal.begin_run(run_id, StepClock())
    run.append(payload_of(RecordKind.RUN_STARTED, {"run_id": run_id}))
    for value in range(readings):
        run.append(payload_of(RecordKind.READING, {"v": value}))
    journal.flush()


def test_a_run_is_claimed_when_it_begins_and_released_when_it_is_sealed(
    journal_path: Location,
) -> None:
    with Journal(journal_path, owner_stale_s=QUIET) as journal:
        run = journal.begin_run("run-a", StepClock())
        claim = run.claim
        assert claim is not None and claim.epoch == 1 and claim.previous is None
        owner = _owner(journal_path)
        me = this_controller()
        assert owner is not None and (owner.host, owner.pid) == (me.host, os.getpid())
        assert owner.epoch == 1 and owner.released_wall_ns is None
        assert owner.process_start == process_start(os.getpid())
        run.append(payload_of(RecordKind.RUN_STARTED, {}))
        run.seal()
        released = _owner(journal_path)
        assert released is not None and released.released_wall_ns is not None


def test_a_clean_close_releases_an_unended_run_which_resumes_with_the_next_epoch(
    journal_path: Location,
) -> None:
    with Journal(journal_path, owner_stale_s=QUIET) as journal:
        _begin(journal)
    owner = _owner(journal_path)
    assert owner is not None and owner.released_wall_ns is not None
    with Journal(journal_path, create=False, owner_stale_s=QUIET) as journal:
        run = journal.resume_run("run-a", StepClock(START_S + 10))
        assert run.claim is not None and run.claim.epoch == 2
        assert run.claim.why == "released"
        again = _owner(journal_path)
        assert again is not None and again.epoch == 2 and again.released_wall_ns is None


def test_a_live_owner_is_refused_at_once_naming_it_and_nothing_is_written(
    journal_path: Location,
) -> None:
    with Journal(journal_path, owner_stale_s=QUIET) as first:
        _begin(first)
        before = stored_state(journal_path)
        with Journal(journal_path, create=False, owner_stale_s=QUIET) as second:
            with pytest.raises(RunOwnedError) as refused:
                second.resume_run("run-a", StepClock(START_S + 10))
            with pytest.raises(RunOwnedError):
                second.check_owner("run-a")
        message = str(refused.value)
        assert f"pid {os.getpid()}" in message and socket.gethostname() in message
        assert "run-a" in message and "since " in message and "epoch 1" in message
        assert "CELLAUTO_OWNER_STALE_S" in message
        assert stored_state(journal_path) == before
        owner = _owner(journal_path)
        assert owner is not None and owner.epoch == 1


def test_a_second_journal_cannot_begin_a_run_another_one_holds(journal_path: Location) -> None:
    with Journal(journal_path, owner_stale_s=QUIET) as first:
        first.begin_run("run-a", StepClock())  # claimed; nothing recorded yet
        with (
            Journal(journal_path, owner_stale_s=QUIET) as second,
            pytest.raises(RunOwnedError, match="run-a"),
        ):
            second.begin_run("run-a", StepClock())


_CONTROLLER = """
import sys, time
from cellauto.records import Journal, RecordKind
from tests.records.conftest import StepClock
from tests.records.factory import payload_of
from tests.records.site_factory import stored_state

journal = Journal(sys.argv[1], owner_stale_s=3600)
run = journal.begin_run("run-a", StepClock())
run.append(payload_of(RecordKind.RUN_STARTED, {"run_id": "run-a"}))
run.append(payload_of(RecordKind.READING, {"v": 1}), durable=True)
print("ready", flush=True)
time.sleep(600)
"""


def test_a_run_whose_controller_was_killed_is_taken_over_at_once(journal_path: Location) -> None:
    repo = Path(__file__).resolve().parents[2]
    child = subprocess.Popen(
        [sys.executable, "-c", _CONTROLLER, str(journal_path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=repo,
        env={**os.environ, "PYTHONPATH": str(repo)},
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        with (
            Journal(journal_path, create=False, owner_stale_s=QUIET) as journal,
            pytest.raises(RunOwnedError, match=f"pid {child.pid}"),
        ):
            journal.check_owner("run-a")  # alive: refused
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    with Journal(journal_path, create=False, owner_stale_s=QUIET) as journal:
        run = journal.resume_run("run-a", StepClock(START_S + 10))  # no waiting
        assert run.claim is not None and run.claim.epoch == 2 and run.claim.why == "gone"
        assert run.claim.previous is not None and run.claim.previous.pid == child.pid
        run.append(payload_of(RecordKind.READING, {"v": 2}))
        run.seal()
        assert verify_run(journal, "run-a").intact


def test_a_stale_owner_is_taken_over_and_its_late_records_are_refused(
    journal_path: Location,
) -> None:
    old = Journal(journal_path, owner_stale_s=QUIET)
    try:
        old_run = old.begin_run("run-a", StepClock())
        old_run.append(payload_of(RecordKind.RUN_STARTED, {"run_id": "run-a"}))
        old.flush()
        # a controller for which any heartbeat is stale: the owner is alive, but hung
        with Journal(journal_path, create=False, owner_stale_s=0) as new:
            run = new.resume_run("run-a", StepClock(START_S + 10))
            assert run.claim is not None and run.claim.why == "stale"
            run.append(payload_of(RecordKind.READING, {"v": "new owner"}))
            new.flush()
            # the old owner wakes up and writes: refused, naming the new owner
            old_run.append(payload_of(RecordKind.READING, {"v": "late, buffered"}))
            with pytest.raises(FencedError, match="epoch 2") as fenced:
                old_run.append(INTENT, durable=True)
            assert f"pid {os.getpid()}" in str(fenced.value) and "epoch 1" in str(fenced.value)
            with pytest.raises(FencedError):
                old_run.append(payload_of(RecordKind.READING, {"v": "later still"}))
            with pytest.raises(FencedError):
                old_run.seal()
            run.append(payload_of(RecordKind.READING, {"v": "new owner, again"}))
            run.seal()
            records = new.records("run-a")
            assert [r.payload.value for r in records[1:]] == [  # type: ignore[attr-defined]
                {"v": "new owner"},
                {"v": "new owner, again"},
            ]
            assert verify_run(new, "run-a").intact
        owner = _owner(journal_path)
        assert owner is not None and owner.epoch == 2 and owner.released_wall_ns is not None
    finally:
        old.close()  # its refused records are dropped; it releases nothing of epoch 2
    owner = _owner(journal_path)
    assert owner is not None and owner.epoch == 2


@pytest.mark.anyio
async def test_a_durable_intent_after_a_takeover_raises_so_the_action_is_not_taken(
    journal_path: Location,
) -> None:
    with Journal(journal_path, owner_stale_s=QUIET) as old:
        old_run = old.begin_run("run-a", StepClock())
        old_run.append(payload_of(RecordKind.RUN_STARTED, {"run_id": "run-a"}))
        old.flush()
        with Journal(journal_path, create=False, owner_stale_s=0) as new:
            new.resume_run("run-a", StepClock(START_S + 10))
            with pytest.raises(FencedError, match="taken over"):
                await old_run.append_durable(INTENT)
        assert len(old.records("run-a")) == 1


def test_a_takeover_fences_only_the_run_taken_over(journal_path: Location) -> None:
    with Journal(journal_path, owner_stale_s=QUIET) as old:
        _begin(old, "run-a", readings=0)
        _begin(old, "run-b", readings=0)
        with Journal(journal_path, create=False, owner_stale_s=0) as new:
            new.resume_run("run-a", StepClock(START_S + 10))
            old._open_runs["run-a"].append(payload_of(RecordKind.READING, {"v": "refused"}))
            old._open_runs["run-b"].append(payload_of(RecordKind.READING, {"v": "kept"}))
            old.flush()  # one commit with both runs' rows: run-b's go in
            assert len(new.records("run-a")) == 1
            assert len(new.records("run-b")) == 2
            b_owner = _owner(journal_path, "run-b")
            assert b_owner is not None and b_owner.epoch == 1


def test_the_heartbeat_is_refreshed_in_real_time_by_the_writer(journal_path: Location) -> None:
    with Journal(journal_path, owner_stale_s=0.2) as journal:  # a heartbeat every 50 ms
        journal.begin_run("run-a", StepClock())
        first = _owner(journal_path)
        assert first is not None
        deadline = time.monotonic() + 60  # only to end a broken test, never a bound
        while True:
            now = _owner(journal_path)
            assert now is not None
            if now.heartbeat_wall_ns > first.heartbeat_wall_ns:
                break
            assert time.monotonic() < deadline, "no heartbeat written"
            time.sleep(0.01)
        assert now.epoch == 1 and now.started_wall_ns == first.started_wall_ns


def test_a_reused_pid_is_not_taken_for_the_owner() -> None:
    assert process_alive(os.getpid(), process_start(os.getpid()))
    assert not process_alive(os.getpid(), "another boot:0")


@pytest.mark.sqlite_only  # older schema versions exist only as SQLite files
def test_a_version_2_journal_is_read_as_is_and_upgraded_when_a_run_is_claimed(
    journal_path: Location,
) -> None:
    with Journal(journal_path) as journal:
        run = journal.begin_run("old", StepClock())
        run.append(payload_of(RecordKind.RUN_STARTED, {"run_id": "old"}))
        run.seal()
    conn = raw_connection(journal_path)
    conn.execute("DROP TABLE run_owners")
    conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    conn.close()
    before = stored_state(journal_path)
    with Journal(journal_path, create=False) as journal:
        assert len(journal.records("old")) == 1
        assert verify_run(journal, "old").intact
    assert stored_state(journal_path) == before  # reading writes nothing
    with Journal(journal_path) as journal:
        _begin(journal, "new")
    conn = raw_connection(journal_path)
    version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    conn.close()
    assert version == ("8",)


def test_a_bad_stale_interval_is_refused(
    journal_path: Location, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CELLAUTO_OWNER_STALE_S", "soon")
    with pytest.raises(JournalOpenError, match="CELLAUTO_OWNER_STALE_S"):
        Journal(journal_path)


def test_records_a_stale_owner_commits_just_before_the_takeover_are_continued(
    journal_path: Location, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Journal(journal_path, owner_stale_s=QUIET) as old:
        _begin(old, readings=0)
        old_run = old._open_runs["run-a"]
        real_claim = _owners.claim

        def claim_after_a_late_commit(*args: Any, **kwargs: Any) -> _owners.Claim:
            old_run.append(payload_of(RecordKind.READING, {"v": "late but in"}))
            old.flush()  # committed after the new controller read the chain's end
            return real_claim(*args, **kwargs)

        monkeypatch.setattr(_owners, "claim", claim_after_a_late_commit)
        with Journal(journal_path, create=False, owner_stale_s=0) as new:
            run = new.resume_run("run-a", StepClock(START_S + 10))
            assert run.next_seq == 2  # after the late record, not over it
            run.append(payload_of(RecordKind.READING, {"v": "new owner"}))
            run.seal()
            assert len(new.records("run-a")) == 3
            assert verify_run(new, "run-a").intact


def test_a_journal_named_by_a_relative_path_knows_its_own_process_holds_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with Journal("j.db", owner_stale_s=QUIET) as owner:
        _begin(owner)
        for name in (tmp_path / "j.db", "j.db"):
            with (
                Journal(name, create=False, owner_stale_s=QUIET) as other,
                pytest.raises(RunOwnedError),
            ):
                other.check_owner("run-a")
