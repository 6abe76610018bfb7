"""What the deviation pages show, read from the journal: every deviation with who opened
and closed it, one deviation's history (its records, signatures and refusals, in chain
order), and which acts its state allows now (the workflow's own rules,
:data:`~cellauto.review.deviation_rules.TRANSITIONS`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from cellauto.records.backend import Conn
from cellauto.records.site_payload_base import SiteKind, SitePayload
from cellauto.records.site_payloads import Signature, SignatureRefused
from cellauto.records.site_payloads_review import (
    Classification,
    DeviationClassified,
    DeviationClosed,
    DeviationInvestigated,
    DeviationRaised,
    DeviationWithdrawn,
    ReviewActRefused,
)
from cellauto.review.deviation_rules import TRANSITIONS, Act, Status, transition_problem
from cellauto.review.read import DeviationRow, read_deviations, runner_deviations
from cellauto.site._chain import StoredSiteRecord, stored_site_record, stored_site_records
from cellauto.site.run_facts import RunFacts, run_facts, stored_run_record
from cellauto.web.routes.qa_common import shown_time

__all__ = [
    "DeviationLine",
    "HistoryLine",
    "allowed_acts",
    "deviation_lines",
    "history",
    "plan_steps",
    "run_header",
]


@dataclass(frozen=True)
class DeviationLine:
    """One deviation in the site's list."""

    row: DeviationRow
    opened: str
    opened_by: str
    closed: str
    closed_by: str


def _people(conn: Conn) -> tuple[dict[str, str], dict[str, str]]:
    """Who raised, and who closed or withdrew, each deviation (by its site records)."""
    opened: dict[str, str] = {}
    closed: dict[str, str] = {}
    kinds = (SiteKind.DEVIATION_RAISED, SiteKind.DEVIATION_CLOSED, SiteKind.DEVIATION_WITHDRAWN)
    for record in stored_site_records(conn, kinds=kinds):
        payload = record.payload
        if isinstance(payload, DeviationRaised):
            opened[payload.deviation_id] = payload.by
        elif isinstance(payload, DeviationClosed | DeviationWithdrawn):
            closed[payload.deviation_id] = payload.by
    return opened, closed


def deviation_lines(conn: Conn, run_id: str | None = None) -> list[DeviationLine]:
    """Every deviation of the site (or of one run), newest runs' last."""
    opened, closed = _people(conn)
    return [
        DeviationLine(
            row=row,
            opened=shown_time(row.opened_wall_ns),
            opened_by=opened.get(row.deviation_id, "the run" if row.origin == "runner" else ""),
            closed=shown_time(row.closed_wall_ns),
            closed_by=closed.get(row.deviation_id, ""),
        )
        for row in read_deviations(conn, run_id=run_id)
    ]


@dataclass(frozen=True)
class HistoryLine:
    """One entry of a deviation's history."""

    seq: str
    when: str
    what: str
    by: str
    detail: str
    reason: str
    refused: bool = False


def _described(payload: SitePayload) -> tuple[str, str, str, bool] | None:
    """(what, by, detail, refused) of a record of a deviation's history."""
    if isinstance(payload, DeviationRaised):
        hold = " (a Hold of the run requested)" if payload.hold_requested else ""
        return "raised", payload.by, f"{payload.title}: {payload.description}{hold}", False
    if isinstance(payload, DeviationClassified):
        was = "" if payload.previous is None else f" (was {payload.previous.value})"
        others = (
            f"; other batches: {', '.join(payload.other_batches)}" if payload.other_batches else ""
        )
        what = f"classified {payload.classification.value}{was}"
        return what, payload.by, f"{payload.impact_assessment}{others}", False
    if isinstance(payload, DeviationInvestigated):
        evidence = "; ".join(f"{e.name} (SHA-256 {e.sha256})" for e in payload.evidence)
        detail = (
            f"root cause ({payload.category.value}): {payload.root_cause}; product impact"
            f" {payload.product_impact.value}: {payload.impact_detail}"
            + (f"; evidence: {evidence}" if evidence else "")
        )
        return "investigated", payload.by, detail, False
    if isinstance(payload, DeviationClosed):
        capa = (
            f"CAPA {payload.capa}"
            if payload.capa
            else f"no CAPA: {payload.no_capa_reason}"
            if payload.no_capa_reason
            else "no CAPA"
        )
        return "closed", payload.by, f"{payload.conclusion} ({capa})", False
    if isinstance(payload, DeviationWithdrawn):
        return "withdrawn", payload.by, payload.cause, False
    if isinstance(payload, Signature):
        who = f"{payload.printed_name} ({payload.signer})"
        return f"signed: {payload.meaning.value}", who, payload.statement, False
    if isinstance(payload, ReviewActRefused):
        return f"{payload.act} refused ({payload.cause})", payload.by, payload.detail, True
    if isinstance(payload, SignatureRefused):
        return f"signature refused ({payload.cause})", payload.name, payload.detail, True
    return None


def _with_signatures(conn: Conn, deviation_id: str) -> list[StoredSiteRecord]:
    """The site records naming the deviation, each act's signature after it (a signature
    is written right after what it signs, in the act's transaction)."""
    found: list[StoredSiteRecord] = []
    for record in stored_site_records(conn, mentioning=deviation_id):
        found.append(record)
        if isinstance(record.payload, Signature | ReviewActRefused | SignatureRefused):
            continue
        after = stored_site_record(conn, record.seq + 1)
        if (
            after is not None
            and isinstance(after.payload, Signature)
            and (after.payload.signed.chain, after.payload.signed.seq) == ("site", record.seq)
        ):
            found.append(after)
    return found


def history(conn: Conn, row: DeviationRow) -> list[HistoryLine]:
    """The deviation's run record (one the runner recorded) and every site record that
    names it, in chain order."""
    lines: list[HistoryLine] = []
    if row.origin == "runner":
        recorded = next(
            (r for r in runner_deviations(conn, row.run_id) if r.deviation_id == row.deviation_id),
            None,
        )
        if recorded is not None:
            value = "" if recorded.value is None else f" (value {recorded.value:g})"
            lines.append(
                HistoryLine(
                    seq=f"run #{recorded.seq}",
                    when=shown_time(recorded.wall_time_ns),
                    what="recorded by the run",
                    by="the run",
                    detail=f"check {recorded.check!r}, policy {recorded.policy}:"
                    f" {recorded.description}{value}",
                    reason="",
                )
            )
    for record in _with_signatures(conn, row.deviation_id):
        described = _described(record.payload)
        if described is None:
            continue
        what, by, detail, refused = described
        lines.append(
            HistoryLine(
                seq=f"site #{record.seq}",
                when=shown_time(record.wall_time_ns),
                what=what,
                by=by,
                detail=detail,
                reason=record.payload.reason,
                refused=refused,
            )
        )
    return lines


def allowed_acts(row: DeviationRow) -> dict[str, bool]:
    """The acts the deviation's state allows now, each with whether it needs a reason:
    ``classify`` (the first classification or, with a reason, a later one),
    ``investigate``, ``close``, ``withdraw``."""
    status = cast(Status, row.status)
    classification = None if row.classification is None else Classification(row.classification)
    allowed: dict[str, bool] = {}
    acts: tuple[Act, ...] = ("classify", "reclassify", "investigate", "close", "withdraw")
    for act in acts:
        _, _, to = transition_problem(
            status, act, origin=row.origin, classification=classification, reason="given"
        )
        if to is not None:
            name = "classify" if act == "reclassify" else act
            allowed[name] = TRANSITIONS[status, act].reason
    return allowed


def plan_steps(conn: Conn, run_id: str) -> list[str]:
    """The steps of the run's plan (a deviation names one, or the whole batch)."""
    first = stored_run_record(conn, run_id, 0)
    steps = [] if first is None else first[1].get("steps") or []
    return [str(step["name"]) for step in steps]


def run_header(conn: Conn, run_id: str) -> RunFacts | None:
    """The run's protocol, version, COI and whether it ended (None: no such run)."""
    return run_facts(conn, run_id)
