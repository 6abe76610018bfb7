"""Verify rule 5: each signature's authority at the moment it was signed.

While the site chain is replayed (:func:`cellauto.site.replay.replay_problem`), each
``signature`` record is checked against the replayed state *just before it*: the
signer had an account that was active, with a password of their own that had not
expired; held the permission the signature needs and is no administrator; the roles
and printed name the signature shows are the account's; and each training record it
relied on is the signer's, still in force (not revoked or replaced) and valid on the
day of signing. A signature written around :func:`cellauto.site.signatures.sign`
(another program, an edited file with a recomputed chain) is named here.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from cellauto.records.backend import Conn
from cellauto.records.refs import SITE_CHAIN, Meaning, RecordRef
from cellauto.records.site_payloads import (
    RunCommandRequested,
    SessionOpened,
    Signature,
    SitePayload,
    SitePolicy,
    TrainingRecorded,
)
from cellauto.records.site_payloads_mat import (
    CalibrationRecorded,
    EquipmentAdded,
    EquipmentStatusChanged,
    LotRejected,
    LotReleased,
)
from cellauto.records.site_payloads_review import (
    BatchDisposed,
    DeviationClassified,
    DeviationClosed,
    DeviationInvestigated,
    DeviationRaised,
    DeviationWithdrawn,
    LimsSchemaDefined,
    QcResultEntered,
    QcResultInvalidated,
    QcResultsImported,
    QcResultVerified,
)
from cellauto.site.policy import site_date
from cellauto.site.projection import accounts_by_name
from cellauto.site.roles import MEANING_PERMISSION, Permission, Role, permissions_of

__all__ = ["authority_problem", "needed_permission"]

_COMMAND_PERMISSION = {
    "hold": Permission.RUN_HOLD,
    "restart": Permission.RUN_RESTART,
    "stop": Permission.RUN_STOP,
    "abort": Permission.RUN_ABORT,
}

_REVIEW_PERMISSION: Mapping[type[SitePayload], Permission] = {
    DeviationRaised: Permission.DEVIATION_RAISE,
    DeviationClassified: Permission.DEVIATION_CLASSIFY,
    DeviationInvestigated: Permission.DEVIATION_INVESTIGATE,
    DeviationClosed: Permission.DEVIATION_CLOSE,
    DeviationWithdrawn: Permission.DEVIATION_CLOSE,
    QcResultEntered: Permission.QC_ENTER,
    QcResultsImported: Permission.QC_ENTER,
    QcResultVerified: Permission.QC_VERIFY,
    QcResultInvalidated: Permission.QC_INVALIDATE,
    LimsSchemaDefined: Permission.QC_SCHEMA,
    BatchDisposed: Permission.BATCH_RELEASE,
}
"""The permission each act of review and release needs, whatever its meaning."""

_SESSION_PERMISSION = {"run.start": Permission.RUN_START, "run.restart": Permission.RUN_RESTART}
"""A session opened to start (resume) a run: its purpose begins with the permission."""


def needed_permission(
    meaning: Meaning, target: RecordRef, signed: SitePayload | None
) -> Permission:
    """The permission a signature needs: a command request's own permission (``signed``:
    the site record signed, if it is one), a run's start or resume (a ``session_opened``
    whose purpose is ``run.start ...`` or ``run.restart ...``), a lot's release or rejection
    (``lot.release``), an act on the equipment registry (``equipment.manage``), an act of
    review and release (deviations, QC results, a batch's disposition), a restart
    after a deviation's (an ``approved`` signature of a run's ``deviation`` record), else
    the meaning's."""
    if isinstance(signed, RunCommandRequested):
        return _COMMAND_PERMISSION[signed.command]
    if isinstance(signed, LotReleased | LotRejected):  # QA's decision on a lot
        return Permission.LOT_RELEASE
    if isinstance(signed, EquipmentAdded | EquipmentStatusChanged | CalibrationRecorded):
        return Permission.EQUIPMENT_MANAGE  # an act on the equipment registry
    if signed is not None and type(signed) in _REVIEW_PERMISSION:
        return _REVIEW_PERMISSION[type(signed)]  # review and release (deviations, QC, QA)
    if isinstance(signed, SessionOpened) and meaning == Meaning.PERFORMED:
        acting = _SESSION_PERMISSION.get(signed.purpose.split(" ", 1)[0])
        if acting is not None:  # the start (or resume) of a run by the session's person
            return acting
    restart = target.chain != SITE_CHAIN and target.kind == "deviation"
    if restart and meaning == Meaning.APPROVED:
        return Permission.RUN_RESTART_AFTER_DEVIATION
    return MEANING_PERMISSION[meaning]


def _policy(scratch: Conn) -> SitePolicy | None:
    row = scratch.execute("SELECT value FROM meta WHERE key = 'site_policy'").fetchone()
    return None if row is None else SitePolicy.model_validate_json(row[0])


def _training_problem(
    scratch: Conn,
    signature: Signature,
    day: date | None,
    earlier: Mapping[int, tuple[str, SitePayload]],
) -> str | None:
    for ref in signature.training:
        found = earlier.get(ref.seq)
        recorded = None if found is None or found[0] != ref.hash else found[1]
        if not isinstance(recorded, TrainingRecorded) or recorded.trainee != signature.signer:
            return f"relies on site record {ref.seq}, which is no training record of theirs"
        subject = recorded.subject
        row = scratch.execute(
            "SELECT source_seq FROM training WHERE trainee = ? AND subject_kind = ?"
            " AND subject = ? AND version = ?",
            (recorded.trainee, subject.kind, subject.name, subject.version or ""),
        ).fetchone()
        if row is None or row[0] != ref.seq:
            return f"relies on training record {ref.seq}, revoked or replaced before it"
        ended = recorded.expires_on is not None and day is not None and recorded.expires_on < day
        if day is not None and (recorded.trained_on > day or ended):
            return f"relies on training record {ref.seq}, not valid on {day}"
    return None


def authority_problem(
    scratch: Conn,
    seq: int,
    wall_time_ns: int,
    signature: Signature,
    earlier: Mapping[int, tuple[str, SitePayload]],
) -> str | None:
    """What was wrong with signature record ``seq`` when it was signed, or None.

    ``scratch``: the projections replayed up to (not including) ``seq``; ``earlier``:
    seq -> (hash, payload) of the records before it."""
    name = signature.signer
    what = f"site record {seq}: signature of {name!r} ({signature.meaning.value})"
    account = accounts_by_name(scratch, name).get(name)
    if account is None:
        return f"{what}: no such account then"
    if account.status != "active":
        return f"{what}: the account was {account.status} then"
    if account.must_change:
        return f"{what}: the password was an administrator's, not yet changed"
    if account.password_expires_ns is not None and wall_time_ns >= account.password_expires_ns:
        return f"{what}: the password had expired"
    signed = earlier.get(signature.signed.seq) if signature.signed.chain == SITE_CHAIN else None
    permission = needed_permission(
        signature.meaning, signature.signed, None if signed is None else signed[1]
    )
    if Role.ADMINISTRATOR in account.roles or permission not in permissions_of(account.roles):
        return f"{what}: roles {', '.join(account.roles)} do not grant {permission.value}"
    if list(account.roles) != signature.roles or account.full_name != signature.printed_name:
        return (
            f"{what}: shows {signature.printed_name!r} with roles {signature.roles} but the"
            f" account was {account.full_name!r} with {list(account.roles)}"
        )
    policy = _policy(scratch)
    day = None if policy is None else site_date(policy, wall_time_ns)
    problem = _training_problem(scratch, signature, day, earlier)
    return None if problem is None else f"{what}: {problem}"
