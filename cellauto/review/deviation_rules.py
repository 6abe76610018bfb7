"""The deviation workflow's rules as data: which act may follow which status
(:data:`TRANSITIONS`) and when a closure needs a CAPA (:data:`CAPA_RULE`).

The acts (:mod:`cellauto.review.deviations`) refuse by these rules before anything is
written; ``verify`` (:mod:`cellauto.site.replay_deviations`) replays the site chain
through the same rules, so a forged or edited chain is named. Pure: no database here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, NamedTuple

from cellauto.records.site_payloads_review import Classification

__all__ = [
    "ACTS",
    "CAPA_RULE",
    "STATUSES",
    "TRANSITIONS",
    "Act",
    "CapaNeed",
    "Rule",
    "Status",
    "capa_problem",
    "transition_problem",
]

Status = Literal["open", "classified", "investigated", "closed", "withdrawn"]
Act = Literal["classify", "reclassify", "investigate", "close", "withdraw"]
STATUSES: tuple[Status, ...] = ("open", "classified", "investigated", "closed", "withdrawn")
ACTS: tuple[Act, ...] = ("classify", "reclassify", "investigate", "close", "withdraw")


class Rule(NamedTuple):
    """What an act does from a status: the status it leads to, or the cause it is refused
    with (``to`` None). ``reason``: the act needs a written reason there (a
    reclassification, an amended investigation, a minor closure without investigation);
    ``classes``: only deviations of these classes may (others refused ``otherwise``);
    ``person_raised``: only a deviation a person raised on the site (in error, then),
    never one the runner recorded nor one an out-of-specification QC result opened;
    ``investigated_if_oos``: a deviation an OOS result opened must be investigated first
    (every out-of-specification result is investigated, whatever its class)."""

    to: Status | None
    cause: str = ""
    reason: bool = False
    classes: frozenset[Classification] | None = None
    otherwise: str = ""
    person_raised: bool = False
    investigated_if_oos: bool = False


_CLOSED = Rule(None, "closed")

TRANSITIONS: Mapping[tuple[Status, Act], Rule] = {
    ("open", "classify"): Rule("classified"),
    ("open", "reclassify"): Rule(None, "not_classified"),
    ("open", "investigate"): Rule(None, "not_classified"),
    ("open", "close"): Rule(None, "not_classified"),
    ("open", "withdraw"): Rule("withdrawn", person_raised=True),
    ("classified", "classify"): Rule(None, "already_classified"),
    ("classified", "reclassify"): Rule("classified", reason=True),
    ("classified", "investigate"): Rule("investigated"),
    ("classified", "close"): Rule(
        "closed",
        reason=True,
        classes=frozenset({Classification.MINOR}),
        otherwise="needs_investigation",
        investigated_if_oos=True,
    ),
    ("classified", "withdraw"): Rule("withdrawn", person_raised=True),
    ("investigated", "classify"): Rule(None, "already_classified"),
    ("investigated", "reclassify"): Rule("investigated", reason=True),
    ("investigated", "investigate"): Rule("investigated", reason=True),
    ("investigated", "close"): Rule("closed"),
    ("investigated", "withdraw"): Rule(None, "investigated"),
    **{(status, act): _CLOSED for status in ("closed", "withdrawn") for act in ACTS},
}
"""Every (status, act) pair: the deviation lifecycle of design §2.1. ``classify`` is the
first classification, ``reclassify`` any later one (the record names the ``previous``)."""

CapaNeed = Literal["required", "capa_or_reason", "optional"]

CAPA_RULE: Mapping[Classification, CapaNeed] = {
    Classification.CRITICAL: "required",
    Classification.MAJOR: "capa_or_reason",
    Classification.MINOR: "optional",
}
"""What a closure must say about a CAPA, by the deviation's class."""

_WHY = {
    "not_classified": "is {status}, not classified yet (classify it first)",
    "already_classified": "is classified already (give a reason to reclassify it)",
    "needs_investigation": "is {classification}: only a minor deviation may close"
    " without an investigation (investigate it first)",
    "investigated": "is investigated: only a deviation not yet investigated may be withdrawn",
    "closed": "is {status}: nothing more may be done on it",
    "runner_deviation": "was recorded by the run: only a deviation raised in error on the"
    " site may be withdrawn (classify it, e.g. minor, and close it)",
    "qc_deviation": "was opened by an out-of-specification QC result: it is investigated"
    " and closed, never withdrawn (invalidate the result only through its investigation)",
    "oos_needs_investigation": "was opened by an out-of-specification QC result: every OOS"
    " result is investigated before its deviation closes, whatever its class",
    "reason_required": "needs a written reason to {act} it when {status}",
}


def transition_problem(
    status: Status,
    act: Act,
    *,
    origin: str,
    classification: Classification | None,
    reason: str,
) -> tuple[str, str, Status | None]:
    """(cause, why, new status) of ``act`` on a deviation in ``status`` (``origin``: runner,
    person or qc): cause "" and the new status when allowed, else the refusal cause and its
    words ("is open, not classified yet ...", to follow the deviation's id)."""
    rule = TRANSITIONS[status, act]

    def refused(cause: str) -> tuple[str, str, Status | None]:
        text = _WHY[cause].format(
            status=status,
            act=act,
            classification=None if classification is None else classification.value,
        )
        return cause, text, None

    if rule.to is None:
        return refused(rule.cause)
    if rule.person_raised and origin != "person":
        return refused("runner_deviation" if origin == "runner" else "qc_deviation")
    if rule.investigated_if_oos and origin == "qc":
        return refused("oos_needs_investigation")
    if rule.classes is not None and classification not in rule.classes:
        return refused(rule.otherwise)
    if rule.reason and not reason.strip():
        return refused("reason_required")
    return "", "", rule.to


def capa_problem(
    classification: Classification | None, capa: str | None, no_capa_reason: str | None
) -> str | None:
    """Why a closure breaks :data:`CAPA_RULE` for its class, or None."""
    if capa is not None and no_capa_reason is not None:
        return "give either a CAPA reference or a reason for no CAPA, not both"
    need = CAPA_RULE[classification] if classification is not None else "required"
    if need == "required" and capa is None:
        return f"a {classification or 'unclassified'} deviation closes only with a CAPA reference"
    if need == "capa_or_reason" and capa is None and no_capa_reason is None:
        return (
            f"a {classification} deviation closes with a CAPA reference or a written"
            " reason why no CAPA is needed"
        )
    return None
