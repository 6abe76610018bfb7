"""The QA pages in-process (Starlette's TestClient) on a batch ready for release:
deviations raised, classified, investigated and closed; QC results entered, verified and
invalidated; the batch record; the release. Each act is signed; each refusal (the role at
the guard, the state and segregation of duties in the review acts) is journaled and
answered with its status and the site's own words."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from cellauto.records.site_payloads import (
    RunCommandRequested,
    Signature,
    SignatureRefused,
    SignInFailed,
)
from cellauto.records.site_payloads_review import (
    BatchDisposed,
    DeviationClassified,
    DeviationClosed,
    DeviationInvestigated,
    DeviationRaised,
    QcResultEntered,
    QcResultInvalidated,
    QcResultVerified,
    ReviewActRefused,
)
from cellauto.web.app import create_app
from cellauto.web.config import WebConfig
from cellauto.web.routes.qa_report import REPORT_CSP
from tests.review.conftest import Batch
from tests.review.devs import make_active
from tests.web.conftest import ORIGIN, Browser, site_records
from tests.web.harness import password
from tests.web.qa_batch import Ready, batch_template, ready, ready_template

__all__ = ["batch_template", "ready", "ready_template"]  # fixtures

SHA = "ab" * 32


@pytest.fixture
def app(ready: Ready) -> Iterator[TestClient]:
    with TestClient(create_app(WebConfig(db=ready.path))) as client:
        yield client


class Person(Browser):
    """A signed-in person with a browser of their own; ``sign`` posts a signed form."""

    def __init__(self, app: TestClient, name: str) -> None:
        super().__init__(TestClient(app.app))
        self.name = name
        assert self.sign_in(name).status_code == 303
        self.signed = False

    def sign(self, path: str, data: dict[str, str]) -> httpx.Response:
        form = {"password": password(self.name), **data}
        if not self.signed:
            form["signer"] = self.name
        answer = self.post(path, form)
        self.signed = self.signed or answer.status_code == 303
        return answer


def _new(db: Path, since: int) -> list[object]:
    return list(site_records(db)[since:])


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_every_account_reads_the_qa_pages_and_sees_only_the_forms_it_may_use(
    app: TestClient, ready: Ready
) -> None:
    alice, quinn = Person(app, "alice"), Person(app, "quinn")
    run, deviation = ready.run_id, f"DEV-{ready.run_id[:12]}-01"
    for url in (
        "/qa/deviations",
        f"/qa/deviations?run={run[:12]}",
        f"/qa/deviations/{deviation}",
        "/qa/qc",
        f"/qa/qc?run={run}",
        f"/runs/{run}/release",
    ):
        assert alice.client.get(url).status_code == 200, url
    assert deviation in alice.client.get("/qa/deviations").text
    assert "closed" in _text(alice.client.get("/qa/deviations").text)
    for_alice = alice.client.get(f"/runs/{run}/release").text
    assert 'value="release"' not in for_alice and "Not dispositioned" in for_alice
    assert 'value="release"' in quinn.client.get(f"/runs/{run}/release").text
    assert "Raise a deviation" in alice.client.get(f"/qa/deviations?run={run}").text
    assert "/invalidate" not in alice.client.get(f"/qa/qc?run={run}").text
    assert "/invalidate" in quinn.client.get(f"/qa/qc?run={run}").text
    missing = alice.client.get("/qa/deviations/DEV-000000000000-01")
    assert missing.status_code == 404


def test_a_deviation_raised_investigated_and_closed_with_segregation_of_duties(
    app: TestClient, ready: Ready
) -> None:
    db, run = ready.path, ready.run_id
    alice, quinn, lee = Person(app, "alice"), Person(app, "quinn"), Person(app, "qa.lee")
    since = len(site_records(db))
    raised = alice.sign(
        f"/runs/{run}/deviations",
        {"title": "bag label smudged", "description": "the final bag's label is smudged"},
    )
    deviation = f"DEV-{run[:12]}-S01"
    assert (raised.status_code, raised.headers["location"]) == (
        303,
        f"/qa/deviations/{deviation}",
    )
    url = f"/qa/deviations/{deviation}"
    page = alice.client.get(url).text
    assert f"{deviation} raised by alice" in page and "Classify" not in page  # not QA
    assert (
        quinn.sign(
            f"{url}/classify",
            {"classification": "major", "impact_assessment": "the label only, not the bag"},
        ).status_code
        == 303
    )
    investigated = quinn.sign(
        f"{url}/investigate",
        {
            "root_cause": "printer ribbon worn",
            "category": "equipment",
            "product_impact": "none",
            "impact_detail": "identity read from the barcode",
            "evidence_name_1": "ribbon-photo.jpg",
            "evidence_sha256_1": SHA.upper(),
            "evidence_size_1": "48213",
        },
    )
    assert investigated.status_code == 303
    closing = {"conclusion": "the printer ribbon was replaced", "capa": "CAPA-2026-0042"}
    refused = quinn.sign(f"{url}/close", closing)
    assert refused.status_code == 409
    assert "quinn investigated" in refused.text
    assert lee.sign(f"{url}/close", closing).status_code == 303
    new = _new(db, since)
    acts = [type(p) for p in new if not isinstance(p, Signature | SignInFailed)]
    assert acts == [
        DeviationRaised,
        DeviationClassified,
        DeviationInvestigated,
        ReviewActRefused,
        DeviationClosed,
    ]
    (refusal,) = [p for p in new if isinstance(p, ReviewActRefused)]
    assert (refusal.by, refusal.cause, refusal.subject) == ("quinn", "segregation", deviation)
    (investigation,) = [p for p in new if isinstance(p, DeviationInvestigated)]
    assert [(e.name, e.sha256, e.size_bytes) for e in investigation.evidence] == [
        ("ribbon-photo.jpg", SHA, 48213)
    ]
    signatures = [p for p in new if isinstance(p, Signature)]
    assert [(s.signer, s.meaning.value) for s in signatures] == [
        ("alice", "performed"),
        ("quinn", "reviewed"),
        ("quinn", "performed"),
        ("qa.lee", "approved"),
    ]
    assert all(s.terminal.remote_address == "testclient" for s in signatures)
    history = _text(alice.client.get(url).text)
    assert "close refused (segregation)" in history and "signed: approved" in history
    assert "ribbon-photo.jpg" in history and "closed" in history


def test_state_refusals_are_journaled_and_bad_input_writes_nothing(
    app: TestClient, ready: Ready
) -> None:
    db, run = ready.path, ready.run_id
    quinn, alice = Person(app, "quinn"), Person(app, "alice")
    closed = f"/qa/deviations/DEV-{run[:12]}-01"
    since = len(site_records(db))
    bad = quinn.sign(f"{closed}/classify", {"classification": "huge", "impact_assessment": "x"})
    assert bad.status_code == 422 and "classification" in bad.text
    assert _new(db, since) == []  # not even the password was checked
    withdrawn = quinn.sign(f"{closed}/withdraw", {"cause": "raised in error"})
    assert withdrawn.status_code == 409
    assert "nothing more may be done" in withdrawn.text
    held = alice.sign(
        f"/runs/{run}/deviations",
        {"title": "a late thought", "description": "hold it for a check", "hold": "1"},
    )
    assert held.status_code == 409 and "has ended" in held.text
    causes = [p.cause for p in _new(db, since) if isinstance(p, ReviewActRefused)]
    assert causes == ["closed", "run_ended"]


def test_a_wrong_password_signs_nothing_and_is_journaled(app: TestClient, ready: Ready) -> None:
    quinn = Person(app, "quinn")
    since = len(site_records(ready.path))
    wrong = quinn.post(
        f"/qa/qc/QC-{ready.run_id[:12]}-viability-01/verify",
        {"password": "not hers", "signer": "quinn"},
    )
    assert wrong.status_code == 401
    assert [type(p) for p in _new(ready.path, since)] == [SignInFailed]


def _qc_entry(test: str = "viability", value: str = "91.5") -> dict[str, str]:
    return {
        "test": test,
        "value": value,
        "unit": "%",
        "sample_id": "S-0001",
        "method": "7-AAD flow cytometry",
        "analyst": "Q. Entin",
        "tested_on": "2026-01-20",
        "instrument": "FLOW-02",
    }


def test_qc_results_entered_verified_by_another_and_invalidated(
    app: TestClient, ready: Ready
) -> None:
    db, run = ready.path, ready.run_id
    quentin, quinn = Person(app, "quentin"), Person(app, "quinn")
    first = f"QC-{run[:12]}-viability-01"
    since = len(site_records(db))
    again = quentin.sign(f"/runs/{run}/qc", _qc_entry())
    assert again.status_code == 409 and first in again.text
    assert (
        quinn.sign(
            f"/qa/qc/{first}/invalidate", {"cause": "sample mislabelled at the lab"}
        ).status_code
        == 303
    )
    entered = quentin.sign(f"/runs/{run}/qc", _qc_entry())
    assert entered.status_code == 303
    second = f"QC-{run[:12]}-viability-02"
    own = quentin.sign(f"/qa/qc/{second}/verify", {})
    assert own.status_code == 409 and "may not verify" in own.text
    assert quinn.sign(f"/qa/qc/{second}/verify", {}).status_code == 303
    page = quinn.client.get(f"/qa/qc?run={run}").text
    start = page.index(f'id="{second}"')
    row = _text(page[start : page.index("</tr>", start)])
    assert "91.5" in row and "pass" in row and "quentin" in row and "quinn" in row
    new = _new(db, since)
    acts = [type(p) for p in new if not isinstance(p, Signature | SignInFailed)]
    assert acts == [
        ReviewActRefused,
        QcResultInvalidated,
        QcResultEntered,
        ReviewActRefused,
        QcResultVerified,
    ]
    causes = [p.cause for p in new if isinstance(p, ReviewActRefused)]
    assert causes == ["retest_needs_invalidation", "segregation"]


def test_release_refused_with_every_reason_then_released_once(
    app: TestClient, ready: Ready
) -> None:
    db, run = ready.path, ready.run_id
    quinn = Person(app, "quinn")
    url = f"/runs/{run}/release"
    unsure = quinn.sign(url, {"decision": "reject"})
    assert unsure.status_code == 422 and "needs a reason" in unsure.text
    quinn.sign(
        f"/qa/qc/QC-{run[:12]}-viability-01/invalidate", {"cause": "lab error found in the count"}
    )
    since = len(site_records(db))
    refused = quinn.sign(url, {"decision": "release"})
    assert refused.status_code == 409
    assert "qc_missing" in refused.text and "viability" in refused.text
    (refusal,) = [p for p in _new(db, since) if isinstance(p, ReviewActRefused)]
    assert [r.code for r in refusal.reasons] == ["qc_missing"]
    assert not any(isinstance(p, BatchDisposed) for p in site_records(db))
    checked = _text(quinn.client.get(f"{url}?check=1").text)
    assert "1 reason stand" in checked and "qc_missing" in checked
    quentin = Person(app, "quentin")
    assert quentin.sign(f"/runs/{run}/qc", _qc_entry()).status_code == 303
    lee = Person(app, "qa.lee")
    second = f"QC-{run[:12]}-viability-02"
    assert lee.sign(f"/qa/qc/{second}/verify", {}).status_code == 303
    assert "nothing stands against release" in quinn.client.get(f"{url}?check=1").text
    released = quinn.sign(url, {"decision": "release"})
    assert released.status_code == 303
    page = _text(quinn.client.get(url).text)
    assert "released by quinn" in page and 'value="release"' not in page
    (disposed,) = [p for p in site_records(db) if isinstance(p, BatchDisposed)]
    assert (disposed.by, disposed.decision) == ("quinn", "released")
    twice = quinn.sign(url, {"decision": "reject", "reason": "second thoughts"})
    assert twice.status_code == 409 and "already" in twice.text


def test_the_batch_record_has_its_own_policy_and_a_pdf(app: TestClient, ready: Ready) -> None:
    alice = Person(app, "alice")
    report = alice.client.get(f"/runs/{ready.run_id[:12]}/report")
    assert report.status_code == 200
    assert report.headers["content-security-policy"] == REPORT_CSP
    assert report.headers["cache-control"] == "no-store"
    assert '<section id="review">' in report.text and "<script" not in report.text
    pdf = alice.client.get(f"/runs/{ready.run_id}/report.pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    assert alice.client.get("/runs/nosuchrun/report").status_code == 404


def test_an_operator_may_not_release_and_the_refusal_is_journaled(
    app: TestClient, ready: Ready
) -> None:
    alice = Person(app, "alice")
    since = len(site_records(ready.path))
    refused = alice.post(
        f"/runs/{ready.run_id}/release", {"decision": "release", "password": "x", "signer": "alice"}
    )
    assert refused.status_code == 403 and "batch.release" in refused.text
    (record,) = _new(ready.path, since)
    assert isinstance(record, SignatureRefused)
    assert (record.name, record.cause, record.run_id) == ("alice", "permission", ready.run_id)
    assert ORIGIN  # the posts above came from this app's origin


def test_a_deviation_raised_in_error_is_withdrawn(app: TestClient, ready: Ready) -> None:
    alice, quinn = Person(app, "alice"), Person(app, "quinn")
    raised = alice.sign(
        f"/runs/{ready.run_id}/deviations",
        {"title": "wrong batch", "description": "meant for another batch", "step": "expand"},
    )
    url = raised.headers["location"]
    withdrawn = quinn.sign(f"{url}/withdraw", {"cause": "raised on the wrong batch"})
    assert withdrawn.status_code == 303
    page = _text(quinn.client.get(url).text)
    assert "withdrawn by quinn" in page and "nothing more may be done" in page
    assert "step expand" in page


def test_a_deviation_on_an_active_run_requests_its_hold(app: TestClient, ready: Ready) -> None:
    make_active(Batch(ready.path, ready.run_id, None))  # type: ignore[arg-type]
    alice = Person(app, "alice")
    since = len(site_records(ready.path))
    raised = alice.sign(
        f"/runs/{ready.run_id}/deviations",
        {"title": "bag leaking", "description": "drops at the sample port", "hold": "1"},
    )
    assert raised.status_code == 303
    assert "Hold of the run was requested" in _text(
        alice.client.get(raised.headers["location"]).text
    )
    (hold,) = [p for p in _new(ready.path, since) if isinstance(p, RunCommandRequested)]
    assert (hold.command, hold.run_id, hold.by) == ("hold", ready.run_id, "alice")


def test_a_batch_rejected_with_its_reason(app: TestClient, ready: Ready) -> None:
    quinn = Person(app, "quinn")
    url = f"/runs/{ready.run_id}/release"
    rejected = quinn.sign(url, {"decision": "reject", "reason": "potency in doubt"})
    assert rejected.status_code == 303
    assert "rejected by quinn" in _text(quinn.client.get(url).text)
    (disposed,) = [p for p in site_records(ready.path) if isinstance(p, BatchDisposed)]
    assert (disposed.decision, disposed.reason) == ("rejected", "potency in doubt")


def test_without_the_report_extra_the_page_says_what_to_install(
    app: TestClient, ready: Ready, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "matplotlib" else real(name, *a),
    )
    alice = Person(app, "alice")
    missing = alice.client.get(f"/runs/{ready.run_id}/report")
    assert missing.status_code == 422 and "cellauto[report]" in missing.text
