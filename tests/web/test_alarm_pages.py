"""The alarms page in-process (Starlette's TestClient) against a journal whose live run
raised "pH probe drift suspected": listed until acknowledged with a comment (no
password: an audited act, not a signature), then listed with who and why; every refusal
rendered and, when a person was identified, journaled."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from cellauto.records.site_payloads import AlarmAcknowledged, SessionOpened, SignatureRefused
from cellauto.site.alarms import AlarmRow, open_alarms
from cellauto.site.history import reading_journal
from cellauto.web.app import create_app
from cellauto.web.config import WebConfig
from tests.web.conftest import Browser, site_records
from tests.web.harness import LiveRun, wait_for


@pytest.fixture
def alarmed(staffed_template: Path, tmp_path: Path) -> Iterator[tuple[Path, AlarmRow, Browser]]:
    """(journal, the live run's alarm, a browser on the app) once the alarm is raised."""
    db = tmp_path / "line.db"
    shutil.copyfile(staffed_template, db)
    run = LiveRun(db, tmp_path / "controller.log")
    found: list[AlarmRow] = []

    def raised() -> bool:
        with reading_journal(db) as conn:
            found[:] = open_alarms(conn, run_id=run.run_id)
        return bool(found)

    try:
        wait_for(raised, "the live run's alarm")
        with TestClient(create_app(WebConfig(db=db))) as client:
            yield db, found[0], Browser(client)
    finally:
        run.stop()


def _ack(browser: Browser, alarm: AlarmRow, comment: str, seq: object = None) -> httpx.Response:
    where = f"/alarms/{alarm.run_id}/{alarm.seq if seq is None else seq}/ack"
    return browser.post(where, {"comment": comment})


def test_an_alarm_is_listed_until_acknowledged_with_a_comment(
    alarmed: tuple[Path, AlarmRow, Browser],
) -> None:
    db, alarm, browser = alarmed
    assert browser.sign_in("alice").status_code == 303
    page = browser.client.get("/alarms").text
    assert 'id="badge-alarms" data-count="1"' in page
    card = re.search(r'<article class="alarm major".*?</article>', page, re.S)
    assert card is not None, page
    assert "pH probe drift suspected" in card.group(0) and alarm.run_id[:12] in card.group(0)
    assert f'action="/alarms/{alarm.run_id}/{alarm.seq}/ack"' in card.group(0)
    assert 'name="password"' not in card.group(0)  # no signature: a comment
    listed = browser.client.get("/alarms/list").text
    assert listed.lstrip().startswith('<section id="alarm-lists"') and "pH probe" in listed
    done = _ack(browser, alarm, "probe recalibrated, pH back in range")
    assert done.status_code == 303
    page = browser.client.get("/alarms").text
    assert "No alarm waits for acknowledgement." in page
    assert 'id="badge-alarms" data-count="0"' in page
    assert "probe recalibrated, pH back in range" in page and "<td>alice</td>" in page
    records = site_records(db)
    (ack,) = [p for p in records if isinstance(p, AlarmAcknowledged)]
    (opened,) = [p for p in records if isinstance(p, SessionOpened) and p.name == "alice"]
    assert (ack.by, ack.run_id, ack.alarm.seq, ack.alarm.hash) == (
        "alice",
        alarm.run_id,
        alarm.seq,
        alarm.hash,
    )
    assert ack.comment == "probe recalibrated, pH back in range"
    assert ack.session_id == opened.session_id
    assert ack.terminal.remote_address == "testclient"


def test_refused_acknowledgements_render_and_are_journaled(
    alarmed: tuple[Path, AlarmRow, Browser],
) -> None:
    db, alarm, browser = alarmed
    browser.sign_in("quentin")  # QC: no alarm.acknowledge
    refused = _ack(browser, alarm, "seen it")
    assert refused.status_code == 403
    last = [p for p in site_records(db) if isinstance(p, SignatureRefused)][-1]
    assert (last.name, last.cause, last.run_id) == ("quentin", "permission", alarm.run_id)
    browser.client.cookies.clear()
    browser.sign_in("bob")
    before = len(site_records(db))
    short = _ack(browser, alarm, " x ")
    assert short.status_code == 422
    assert "3 to 500 characters" in short.text
    assert 'role="alert"' in short.text
    assert len(site_records(db)) == before  # bad input: nothing written
    assert _ack(browser, alarm, "x", seq="first").status_code == 404
    assert _ack(browser, alarm, "no such", seq=0).status_code == 422
    missing = [p for p in site_records(db) if isinstance(p, SignatureRefused)][-1]
    assert (missing.name, missing.cause) == ("bob", "target_missing")
    assert _ack(browser, alarm, "seen, probe swapped").status_code == 303
    twice = _ack(browser, alarm, "seen it too")
    assert twice.status_code == 422
    assert "acknowledged by bob" in twice.text
    again = [p for p in site_records(db) if isinstance(p, SignatureRefused)][-1]
    assert (again.cause, again.target is not None) == ("already_acknowledged", True)
