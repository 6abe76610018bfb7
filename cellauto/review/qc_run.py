"""What a QC result is checked against: its run's release plan, parameters, batch values
and containers, and the rules a result must meet before it is recorded (design §3.3).

Shared by hand entry (:mod:`cellauto.review.qc`), LIMS import
(:mod:`cellauto.review.lims`), the simulated lab (:mod:`cellauto.sim.qc`) and ``verify``
(:mod:`cellauto.site.replay_qc`), so each judges a result the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import orjson

from cellauto.records.backend import Conn
from cellauto.records.container_rows import read_containers
from cellauto.records.release_plan import ReleasePlan, ReleaseTest
from cellauto.records.site_payloads import SitePolicy
from cellauto.records.site_payloads_review import QcResultBody, SampleIdentity, Verdict
from cellauto.review.qc_eval import QcInputError, check_form, observe, verdict
from cellauto.site.policy import site_date

__all__ = ["Judged", "RunFacts", "judge", "run_facts", "sample_matches"]


def sample_matches(container: str, sample: str) -> bool:
    """Whether the run's container key ``container`` is the test's ``sample``: the
    same key, or one of a set of that key (``"final product 2"`` of ``"final product"``)."""
    if container == sample:
        return True
    head, _, number = container.rpartition(" ")
    return head == sample and number.isdigit()


@dataclass(frozen=True)
class RunFacts:
    """One run as QC sees it: started (when), ended, its plan, params, values, containers."""

    run_id: str
    started_ns: int
    ended: bool
    plan: ReleasePlan | None
    params: dict[str, Any]
    values: dict[str, Any]
    containers: dict[str, str] = field(default_factory=dict)
    """DIN + flag -> container key."""
    batch_din: str | None = None


def _payload(body: bytes | str) -> dict[str, Any]:
    payload: dict[str, Any] = orjson.loads(body)["payload"]
    return payload


def run_facts(conn: Conn, run_id: str) -> RunFacts | None:
    """The run's facts from its records (None: no such run)."""
    rows = conn.execute(
        "SELECT kind, body, wall_time_ns FROM records WHERE run_id = ? AND kind IN"
        " ('run_started', 'run_ended', 'release_plan', 'batch_value') ORDER BY seq",
        (run_id,),
    ).fetchall()
    started = next(((b, w) for k, b, w in rows if k == "run_started"), None)
    if started is None:
        return None
    plan_body = next((b for k, b, _ in rows if k == "release_plan"), None)
    values = {
        p["name"]: p["value"] for k, b, _ in rows if k == "batch_value" for p in [_payload(b)]
    }
    containers = read_containers(conn, run_id)
    params = _payload(started[0]).get("parameters", {})
    din = params.get("din")
    return RunFacts(
        run_id=run_id,
        started_ns=int(started[1] or 0),
        ended=any(k == "run_ended" for k, _, _ in rows),
        plan=None if plan_body is None else ReleasePlan.model_validate(_payload(plan_body)),
        params=params,
        values=values,
        containers={row.din + row.flag: row.key for row in containers},
        batch_din=str(din)[:13] if din else None,
    )


@dataclass(frozen=True)
class Judged:
    """A result checked and judged: its body (with the container resolved), what was
    compared, and the verdict."""

    body: QcResultBody
    test: ReleaseTest
    observed: float | str
    verdict: Verdict


def _sample(facts: RunFacts, test: ReleaseTest, sample: SampleIdentity) -> SampleIdentity:
    plan = facts.plan
    if plan is not None and plan.coi is not None and sample.coi != plan.coi:
        raise QcInputError(
            "sample_identity",
            f"{test.name}: sample {sample.sample_id} has COI {sample.coi}, but the batch's"
            f" chain of identity is {plan.coi}",
            "coi",
        )
    din = sample.din
    if din is None:
        return sample
    if len(din) == 13:  # the batch's DIN without a container flag
        if din != facts.batch_din:
            raise QcInputError(
                "sample_identity",
                f"{test.name}: DIN {din} is not this batch's ({facts.batch_din})",
                "din",
            )
        return sample
    key = facts.containers.get(din)
    if key is None:
        raise QcInputError(
            "sample_identity",
            f"{test.name}: DIN {din} is none of the run's containers ("
            + (", ".join(sorted(facts.containers)) or "none recorded")
            + ")",
            "din",
        )
    if test.sample is not None and not sample_matches(key, test.sample):
        raise QcInputError(
            "sample_identity",
            f"{test.name}: DIN {din} is the run's {key!r}, but the test samples {test.sample!r}",
            "din",
        )
    return sample.model_copy(update={"container": key})


def judge(facts: RunFacts, body: QcResultBody, today: date, policy: SitePolicy) -> Judged:
    """Check ``body`` against its run (QcInputError naming the rule and the field) and
    judge it: test in the plan, form and unit, sample identity, tested_on from the run's
    start to ``today`` (both dates in the site's time zone, ``policy``'s, as
    :func:`cellauto.site._acts.today` gives today)."""
    plan = facts.plan
    if plan is None:
        raise QcInputError(
            "no_release_plan",
            f"run {facts.run_id} has no release plan (it started before release tests were"
            " recorded): its results cannot be judged",
            "test",
        )
    test = plan.test(body.test)
    if test is None:
        raise QcInputError(
            "unknown_test",
            f"{body.test!r} is not a release test of run {facts.run_id}; its tests: "
            + (", ".join(t.name for t in plan.tests) or "none"),
            "test",
        )
    check_form(test, body.value, body.text, body.unit)
    sample = _sample(facts, test, body.sample)
    started_on = site_date(policy, facts.started_ns)
    if not started_on <= body.tested_on <= today:
        raise QcInputError(
            "tested_on",
            f"{test.name}: tested on {body.tested_on}, but it must be from the run's start"
            f" ({started_on}) to today ({today})",
            "tested_on",
        )
    observed = observe(test, body.value, body.text, facts.values, facts.params)
    return Judged(
        body.model_copy(update={"sample": sample}), test, observed, verdict(test, observed)
    )
