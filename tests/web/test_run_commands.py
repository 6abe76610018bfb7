"""Hold, Restart, Stop and Abort from the run page: a signed request with a reason, the
command's permission checked first (journaled when refused), a command the run's state
does not allow refused before any password is read (409, journaled), a wrong password
journaled (401); the request written with its signature and the web session's id, shown
on the page until the controller settles it, and settled ``expired`` by the server when
nobody takes it up."""

from __future__ import annotations

import html
import re
import time
from pathlib import Path

import pytest

from cellauto.records import Journal
from cellauto.records import payloads as rec
from cellauto.records.site_payloads import (
    RunCommandRequested,
    SessionOpened,
    Signature,
    SignatureRefused,
    SignInFailed,
)
from cellauto.records.task_rows import read_request, settle_request
from cellauto.site.history import reading_journal
from cellauto.site.store import open_site_store
from cellauto.web import request_sweeper
from cellauto.web.routes import runs as run_routes
from tests.web.conftest import Browser, site_records
from tests.web.harness import password, wait_for

T0 = 1_767_700_000.0
RUN = "web-commands-run-1"


def _active_run(path: Path, *, held: bool = False, deviation: bool = False) -> str:
    """A run of ``path`` in progress (Running, or Held; held for a deviation), written
    as a controller writes it, with nobody to take commands up."""
    with Journal(path) as journal:
        run = journal.begin_run(RUN, lambda: T0)
        run.append(
            rec.RunStarted(
                run_id=RUN,
                protocol_name="web-commands",
                protocol_version="1",
                protocol_source_sha256=None,
                protocol_file=None,
                parameters={"coi": "W123426A1B2C3"},
                steps=[
                    rec.StepPlan(
                        name="grow",
                        path=["Expansion"],
                        resume="rerun",
                        max_duration_h=None,
                        max_hold_h=None,
                        expected_duration_h=24,
                        checks={},
                    )
                ],
                line="test line",
                simulated=True,
                wall_clock="real",
                seed=None,
                operator="test",
                instruments={},
                package_versions={},
                operators="people",
            )
        )
        run.append(rec.StateChange(from_state="Idle", to_state="Running", cause="start", step=None))
        run.append(rec.StepStarted(step="grow", index=0, path=["Expansion"], resume="rerun"))
        if deviation:
            run.append(
                rec.Deviation(
                    step="grow",
                    check="culture temperature",
                    description="39.9 °C outside 36..38 °C",
                    policy="hold",
                    value=39.9,
                )
            )
        if held or deviation:
            run.append(
                rec.StateChange(from_state="Running", to_state="Holding", cause="hold", step="grow")
            )
            run.append(
                rec.StateChange(from_state="Holding", to_state="Held", cause="hold", step="grow")
            )
    return RUN


def _command(browser: Browser, run_id: str, name: str, who: str, **form: str):  # type: ignore[no-untyped-def]
    data = {"command": name, "reason": "probe drift", "signer": who, "password": password(who)}
    data.update(form)
    return browser.post(f"/runs/{run_id}/command", data)


def _buttons(page: str) -> dict[str, bool]:
    found = re.findall(r'<button type="submit" name="command" value="(\w+)"([^>]*)>', page)
    return {name: " disabled" not in rest for name, rest in found}


def test_hold_is_requested_signed_from_the_web_session_and_shown_waiting(
    browser: Browser, journal: Path
) -> None:
    run_id = _active_run(journal)
    browser.sign_in("ann")
    page = browser.client.get(f"/runs/{run_id}").text
    assert _buttons(page) == {"hold": True, "restart": False, "stop": False, "abort": False}
    before = len(site_records(journal))
    done = _command(browser, run_id, "hold", "ann")
    assert (done.status_code, done.headers["location"]) == (303, f"/runs/{run_id}")
    new = site_records(journal)[before:]
    requested, signature = new
    assert isinstance(requested, RunCommandRequested) and isinstance(signature, Signature)
    assert (requested.by, requested.command, requested.reason) == ("ann", "hold", "probe drift")
    assert requested.terminal.remote_address == "testclient"
    assert (signature.signer, signature.meaning.value) == ("ann", "performed")
    (opened,) = [
        p for p in site_records(journal) if isinstance(p, SessionOpened) and p.name == "ann"
    ]
    assert signature.session_id == opened.session_id
    with reading_journal(journal) as conn:
        row = read_request(conn, requested.request_id)
    assert row is not None and row.status == "pending"
    expires_in_s = row.expires_wall_ns / 1e9 - time.time()
    assert 0 < expires_in_s <= run_routes.EXPIRES_S
    shown = browser.client.get(f"/runs/{run_id}").text
    assert "Hold requested by ann — waiting for the controller" in shown
    assert "probe drift" in shown
    # the controller settles it: the page says so
    with open_site_store(journal) as store, store.transaction() as tx:
        settle_request(tx.conn, row.request_id, "applied", outcome="Hold applied", run_seq=9)
    live = browser.client.get(f"/runs/{run_id}/live").json()
    assert "Hold requested by ann: applied (run record #9)" in live["state_html"]
    assert live["commands"]["hold"] == {"enabled": True, "why_not": ""}


def test_a_command_the_state_does_not_allow_is_refused_before_the_password(
    browser: Browser, journal: Path
) -> None:
    run_id = _active_run(journal)
    browser.sign_in("sam")
    before = len(site_records(journal))
    refused = _command(browser, run_id, "restart", "sam", password="not even read")
    assert refused.status_code == 409
    assert "not allowed in state 'Running'" in html.unescape(refused.text)
    (record,) = site_records(journal)[before:]
    assert isinstance(record, SignatureRefused)
    assert (record.name, record.cause, record.run_id) == ("sam", "run_state", run_id)
    assert "Restart" in record.detail


def test_a_command_of_an_ended_run_is_refused(browser: Browser, journal: Path) -> None:
    run_id = _active_run(journal)
    with Journal(journal) as j:
        run = j.resume_run(run_id, lambda: T0 + 60)
        run.append(
            rec.RunEnded(
                exit_status="complete", final_state="Complete", reason="done", completed_steps=1
            )
        )
    browser.sign_in("ann")
    assert _buttons(browser.client.get(f"/runs/{run_id}").text)["hold"] is False
    before = len(site_records(journal))
    assert _command(browser, run_id, "hold", "ann").status_code == 409
    (record,) = site_records(journal)[before:]
    assert isinstance(record, SignatureRefused) and record.cause == "run_state"


@pytest.mark.parametrize(("who", "name"), [("olga", "stop"), ("root", "hold")])
def test_a_role_that_may_not_is_refused_and_journaled_once(
    browser: Browser, journal: Path, who: str, name: str
) -> None:
    run_id = _active_run(journal)
    browser.sign_in(who)
    before = len(site_records(journal))
    refused = _command(browser, run_id, name, who, password="wrong, never checked")
    assert refused.status_code == 403
    assert f"run.{name}" in refused.text
    (record,) = site_records(journal)[before:]
    assert isinstance(record, SignatureRefused)
    assert (record.name, record.cause, record.run_id) == (who, "permission", run_id)


def test_a_restart_after_a_deviation_needs_a_supervisor(browser: Browser, journal: Path) -> None:
    run_id = _active_run(journal, deviation=True)
    browser.sign_in("ann")
    assert _buttons(browser.client.get(f"/runs/{run_id}").text)["restart"] is False
    before = len(site_records(journal))
    refused = _command(browser, run_id, "restart", "ann")
    assert refused.status_code == 403
    assert "run.restart_after_deviation" in refused.text
    (record,) = site_records(journal)[before:]
    assert isinstance(record, SignatureRefused) and record.cause == "permission"

    supervisor = Browser(browser.client)
    supervisor.client.cookies.clear()
    supervisor.sign_in("sam")
    assert _buttons(supervisor.client.get(f"/runs/{run_id}").text)["restart"] is True
    before = len(site_records(journal))
    done = _command(supervisor, run_id, "restart", "sam")
    assert done.status_code == 303
    requested, performed, approved = site_records(journal)[before:]
    assert isinstance(requested, RunCommandRequested) and requested.command == "restart"
    assert isinstance(performed, Signature) and performed.meaning.value == "performed"
    assert isinstance(approved, Signature) and approved.meaning.value == "approved"
    assert approved.signed.chain == "run" and approved.signed.kind == "deviation"


def test_a_wrong_password_is_refused_and_journaled(browser: Browser, journal: Path) -> None:
    run_id = _active_run(journal)
    browser.sign_in("ann")
    before = len(site_records(journal))
    refused = _command(browser, run_id, "hold", "ann", password="not hers")
    assert refused.status_code == 401
    new = site_records(journal)[before:]
    assert [type(p) for p in new] == [SignInFailed]
    with reading_journal(journal) as conn:
        assert conn.execute("SELECT count(*) FROM run_requests").fetchone()[0] == 0


@pytest.mark.parametrize(
    ("form", "message"),
    [({"reason": "  "}, "needs a reason"), ({"command": "pause"}, "not a command")],
)
def test_no_reason_or_no_such_command_writes_nothing(
    browser: Browser, journal: Path, form: dict[str, str], message: str
) -> None:
    run_id = _active_run(journal)
    browser.sign_in("ann")
    before = len(site_records(journal))
    refused = _command(browser, run_id, "hold", "ann", **form)
    assert refused.status_code == 422
    assert message in refused.text
    assert len(site_records(journal)) == before


def test_a_command_for_no_such_run_is_404(browser: Browser, journal: Path) -> None:
    browser.sign_in("sam")
    before = len(site_records(journal))
    assert _command(browser, "no-such-run", "restart", "sam").status_code == 404
    assert _command(browser, "no-such-run", "hold", "sam").status_code == 404
    assert len(site_records(journal)) == before


def test_a_request_nobody_takes_up_is_settled_expired(browser: Browser, journal: Path) -> None:
    run_id = _active_run(journal)
    browser.sign_in("ann")
    assert _command(browser, run_id, "hold", "ann").status_code == 303
    with reading_journal(journal) as conn:
        (request_id, expires_ns) = conn.execute(
            "SELECT request_id, expires_wall_ns FROM run_requests"
        ).fetchone()
    with open_site_store(journal) as store:
        assert request_sweeper.sweep_once(store, now_ns=expires_ns) == []  # within the grace
        (row,) = request_sweeper.sweep_once(store, now_ns=expires_ns + 2_000_000_000)
        assert (row.request_id, row.status) == (request_id, "expired")
        assert request_sweeper.sweep_once(store, now_ns=expires_ns + 9_000_000_000) == []
    shown = browser.client.get(f"/runs/{run_id}").text
    assert "Hold requested by ann: expired (no controller took it up in time)" in shown


def test_the_server_sweeps_expired_requests_while_it_runs(
    browser: Browser, journal: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run_routes, "EXPIRES_S", 0.05)
    monkeypatch.setattr(request_sweeper, "GRACE_S", 0.0)
    monkeypatch.setattr(request_sweeper, "SWEEP_INTERVAL_S", 0.05)
    run_id = _active_run(journal)
    browser.sign_in("ann")
    assert _command(browser, run_id, "hold", "ann").status_code == 303

    def expired() -> bool:
        with reading_journal(journal) as conn:
            return conn.execute("SELECT status FROM run_requests").fetchone()[0] == "expired"

    wait_for(expired, "the server to settle the request expired")
