"""Acknowledging a run's alarm: who, when, from where and why, once per alarm; refusals
journaled; ``verify`` replays the acknowledgements and names an edited one."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from cellauto import Protocol, Run
from cellauto.cli import main
from cellauto.errors import BadInputError, PermissionRefusedError
from cellauto.records import Journal
from cellauto.records.backend import Location
from cellauto.records.site_payloads import AlarmAcknowledged, SignatureRefused
from cellauto.records.verify import verify_journal
from cellauto.sim import simulate
from cellauto.site.accounts import bootstrap
from cellauto.site.alarms import acknowledge_alarm, open_alarms
from cellauto.site.replay import replay_problem
from cellauto.site.store import open_site_store
from cellauto.testing import journal_from, raw_connection, sqlite_allowed

from .chain import POLICY, TERMINAL
from .conftest import ROOT_PASSWORD, Site, own_password

protocol = Protocol("alarm-demo", version="1.0.0")


@protocol.step(expected_duration_h=0.1)
async def watch(run: Run) -> None:
    """Two things an operator must know of."""
    run.alarm("pH probe drift suspected", severity="major")
    run.alarm("door opened during culture")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("alarms") / "line.db"
    with sqlite_allowed():  # a file, copied onto the backend of the pass by each test
        run = simulate(protocol, db=path, patient="typical")
        with open_site_store(path) as store:
            bootstrap(store, "root", "Rita Admin", ROOT_PASSWORD, policy=POLICY, terminal=TERMINAL)
            site = Site(store)
            site.add("op.ann", "operator")
            site.add("qa.lee", "qa")
            site.add("lab.ito", "qc")
    return path, run.outcome.run_id


@pytest.fixture
def line(template: tuple[Path, str], db_location: Location):  # type: ignore[no-untyped-def]
    source, run_id = template
    path = journal_from(source, db_location)
    with open_site_store(path) as store:
        yield path, run_id, Site(store)


def _verify(path: Location) -> str:
    with Journal(path, create=False) as journal:
        report = verify_journal(journal, site_replay=replay_problem)
    return "" if report.intact else str(report.site.reason)


def test_an_alarm_is_acknowledged_once_with_its_comment(line) -> None:  # type: ignore[no-untyped-def]
    path, run_id, site = line
    with site.store.reading() as conn:
        alarms = open_alarms(conn, run_id=run_id)
    assert [a.message for a in alarms] == ["pH probe drift suspected", "door opened during culture"]
    first = alarms[0]
    ref = acknowledge_alarm(
        site.store, site.sign_in("op.ann"), run_id, first.seq, comment="probe recalibrated"
    )
    record = site.records(ref.seq)[0]
    assert isinstance(record, AlarmAcknowledged)
    assert (record.by, record.alarm.seq, record.alarm.hash) == ("op.ann", first.seq, first.hash)
    assert record.terminal == TERMINAL and record.session_id
    with site.store.reading() as conn:
        still = open_alarms(conn, run_id=run_id)
        every = open_alarms(conn, run_id=run_id, include_acknowledged=True)
    assert [a.seq for a in still] == [alarms[1].seq]
    assert (every[0].acked_by, every[0].comment) == ("op.ann", "probe recalibrated")
    head = site.head()
    with pytest.raises(BadInputError, match=r"acknowledged by op\.ann"):
        acknowledge_alarm(site.store, site.sign_in("qa.lee"), run_id, first.seq, comment="seen")
    (refusal,) = site.new_records(head)[-1:]
    assert isinstance(refusal, SignatureRefused) and refusal.cause == "already_acknowledged"
    assert _verify(path) == ""


@pytest.mark.parametrize("who", ["lab.ito", "root"])
def test_only_the_line_and_qa_acknowledge(line, who: str) -> None:  # type: ignore[no-untyped-def]
    _, run_id, site = line
    with site.store.reading() as conn:
        seq = open_alarms(conn, run_id=run_id)[0].seq
    head = site.head()
    password = ROOT_PASSWORD if who == "root" else None
    with pytest.raises(PermissionRefusedError, match=r"alarm\.acknowledge"):
        acknowledge_alarm(site.store, site.sign_in(who, password), run_id, seq, comment="seen")
    (refusal,) = site.new_records(head)[-1:]
    assert isinstance(refusal, SignatureRefused) and refusal.cause == "permission"


def test_no_alarm_there_and_no_comment_are_refused(line) -> None:  # type: ignore[no-untyped-def]
    _, run_id, site = line
    head = site.head()
    with pytest.raises(BadInputError, match="a comment of 3"):
        acknowledge_alarm(site.store, site.sign_in("op.ann"), run_id, 1, comment=" ")
    assert site.head() == head  # bad input: nothing written
    with pytest.raises(BadInputError, match="has no alarm at record #0"):
        acknowledge_alarm(site.store, site.sign_in("op.ann"), run_id, 0, comment="seen it")
    assert site.new_records(head)[-1].cause == "target_missing"  # type: ignore[attr-defined]


def test_verify_names_an_edited_acknowledgement(line) -> None:  # type: ignore[no-untyped-def]
    path, run_id, site = line
    with site.store.reading() as conn:
        seq = open_alarms(conn, run_id=run_id)[0].seq
    acknowledge_alarm(site.store, site.sign_in("op.ann"), run_id, seq, comment="probe replaced")
    conn = raw_connection(path)
    conn.execute("UPDATE alarm_acks SET by_name = 'qa.lee'")
    conn.close()
    assert "alarm_acks table edited" in _verify(path)


def test_the_cli_lists_and_acknowledges(
    line, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    path, run_id, site = line
    assert main(["alarms", "list", "--db", str(path)]) == 0
    out = capsys.readouterr().out
    assert "pH probe drift suspected" in out and "UNACKNOWLEDGED" in out
    with site.store.reading() as conn:
        seq = open_alarms(conn, run_id=run_id)[0].seq
    monkeypatch.setattr("sys.stdin", io.StringIO(own_password("op.ann") + "\n"))
    argv = ["alarms", "ack", run_id[:8], str(seq), "--comment", "probe recalibrated"]
    assert main([*argv, "--as", "op.ann", "--password-stdin", "--db", str(path)]) == 0
    assert "acknowledged by op.ann" in capsys.readouterr().out
    assert main(["alarms", "list", "--all", "--db", str(path)]) == 0
    assert "acknowledged by op.ann" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO(own_password("op.ann") + "\n"))
    assert main([*argv, "--as", "op.ann", "--password-stdin", "--db", str(path)]) == 2


def test_the_batch_record_says_which_alarms_were_acknowledged(line) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    from cellauto.review.report.batch_record import build_batch_record

    path, run_id, site = line
    with site.store.reading() as conn:
        first = open_alarms(conn, run_id=run_id)[0]
    acknowledge_alarm(site.store, site.sign_in("op.ann"), run_id, first.seq, comment="probe fixed")
    with Journal(path, create=False) as journal:
        record = build_batch_record(journal, run_id, generated_at=datetime(2026, 2, 1, tzinfo=UTC))
    said = sorted(item.detail for item in record.review if item.category == "alarm")
    assert said == [
        "door opened during culture (not acknowledged)",
        "pH probe drift suspected (acknowledged by op.ann: probe fixed)",
    ]
