"""Training records and the training gate (design §3).

A person performs or verifies a step of protocol *P* version *V* (or starts a run of
it) only with a non-revoked training record for ``P@V`` or ``P`` (every version), and
for each SOP the step names, valid today in the site's time zone
(``trained_on <= today <= expires_on``). Training is recorded by someone with
``training.record`` (a supervisor or QA), never for oneself, for an active account.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Literal, NamedTuple

from cellauto.errors import BadInputError, JournalError, PeopleError, PermissionRefusedError
from cellauto.records.backend import Conn
from cellauto.records.refs import SiteRef
from cellauto.records.site_payloads import (
    AccountChangeRefused,
    SitePolicy,
    TrainingRecorded,
    TrainingRevoked,
    TrainingSubject,
)
from cellauto.records.site_store import SiteStore, SiteTx
from cellauto.site._chain import VERIFY_HINT, stored_site_record
from cellauto.site.auth import Authenticated, account_refusal
from cellauto.site.policy import current_policy, site_date
from cellauto.site.replay import confirm_account
from cellauto.site.roles import Permission, permissions_of

__all__ = [
    "TrainingCheck",
    "check_training",
    "parse_subject",
    "record_training",
    "revoke_training",
    "subject_text",
    "training_gap",
]

DEFAULT: Literal["default"] = "default"


def parse_subject(text: str) -> TrainingSubject:
    """``car-t-autologous@1.0.0``, ``car-t-autologous`` (every version), ``sop:SOP-CT-017@4``."""
    kind: Literal["protocol", "sop"] = "protocol"
    rest = text.strip()
    if rest.startswith("sop:"):
        kind, rest = "sop", rest[4:]
    name, at, version = rest.partition("@")
    if not name or (at and not version) or ":" in name or "@" in version:
        raise BadInputError(
            f"training subject {text!r} is not PROTOCOL[@VERSION] or sop:ID[@VERSION]"
            " (e.g. car-t-autologous@1.0.0, sop:SOP-CT-017@4)"
        )
    return TrainingSubject(kind=kind, name=name, version=version or None)


def subject_text(subject: TrainingSubject) -> str:
    prefix = "sop:" if subject.kind == "sop" else ""
    return f"{prefix}{subject.name}" + (f"@{subject.version}" if subject.version else "")


class _Row(NamedTuple):
    version: str
    trained_on: str
    expires_on: str | None
    revoked: int
    source_seq: int
    source_hash: str


def _rows(conn: Conn, trainee: str, subject: TrainingSubject) -> list[_Row]:
    rows = conn.execute(
        "SELECT version, trained_on, expires_on, revoked, source_seq, source_hash FROM training"
        " WHERE trainee = ? AND subject_kind = ? AND subject = ? ORDER BY version",
        (trainee, subject.kind, subject.name),
    )
    return [_Row(*row) for row in rows]


def _confirm(conn: Conn, trainee: str, subject: TrainingSubject, row: _Row) -> None:
    """The row says what its source record says (else the table was edited)."""
    record = stored_site_record(conn, row.source_seq)
    payload = None if record is None or record.hash != row.source_hash else record.payload
    key = TrainingSubject(kind=subject.kind, name=subject.name, version=row.version or None)
    if isinstance(payload, TrainingRecorded):
        fine = (
            payload.trainee == trainee
            and payload.subject == key
            and payload.trained_on.isoformat() == row.trained_on
            and (None if payload.expires_on is None else payload.expires_on.isoformat())
            == row.expires_on
            and row.revoked == 0
        )
    elif isinstance(payload, TrainingRevoked):
        fine = payload.trainee == trainee and payload.subject == key and row.revoked == 1
    else:
        fine = False
    if not fine:
        raise JournalError(
            f"training table edited: row {trainee}/{subject_text(key)} does not match site"
            f" record {row.source_seq}; {VERIFY_HINT}"
        )


class TrainingCheck(NamedTuple):
    """The training records relied on, and what is missing (None: nothing)."""

    relied_on: list[SiteRef]
    gap: str | None


def check_training(
    conn: Conn, account: str, needed: Sequence[TrainingSubject], *, now_ns: int
) -> TrainingCheck:
    """Whether ``account`` holds valid training for every subject in ``needed``."""
    if not needed:
        return TrainingCheck([], None)
    policy, _ = current_policy(conn)
    today = site_date(policy, now_ns)
    relied: list[SiteRef] = []
    for subject in needed:
        rows = _rows(conn, account, subject)
        for row in rows:
            _confirm(conn, account, subject, row)
        fitting = [r for r in rows if r.version in ("", subject.version or "")]
        valid = [
            r
            for r in fitting
            if not r.revoked
            and date.fromisoformat(r.trained_on) <= today
            and (r.expires_on is None or today <= date.fromisoformat(r.expires_on))
        ]
        if valid:
            best = max(valid, key=lambda r: r.version)  # an exact version before "every"
            relied.append(SiteRef(seq=best.source_seq, hash=best.source_hash))
            continue
        return TrainingCheck(relied, _gap_message(account, subject, rows, today))
    return TrainingCheck(relied, None)


def _gap_message(account: str, subject: TrainingSubject, rows: list[_Row], today: date) -> str:
    shown = subject_text(subject)
    what = shown.replace("@", " ") if subject.kind == "protocol" else shown
    recorded = []
    for row in rows:
        text = subject_text(
            TrainingSubject(kind=subject.kind, name=subject.name, version=row.version or None)
        )
        if row.revoked:
            text += ", revoked"
        elif row.expires_on is not None and date.fromisoformat(row.expires_on) < today:
            text += f", expired {row.expires_on}"
        elif date.fromisoformat(row.trained_on) > today:
            text += f", from {row.trained_on}"
        recorded.append(text)
    found = f" (recorded: {'; '.join(recorded)})" if recorded else ""
    return (
        f"{account} has no valid training for {what}{found}; a supervisor or QA records it"
        f" with `cellauto training add {account} --for {shown} --as NAME`"
    )


def training_gap(
    conn: Conn, account: str, needed: Sequence[TrainingSubject], *, now_ns: int
) -> str | None:
    """What training ``account`` lacks for ``needed`` (and how to fix it), or None."""
    return check_training(conn, account, needed, now_ns=now_ns).gap


# -- recording --------------------------------------------------------------------------
def _refuse_in(
    store: SiteStore,
    who: Authenticated,
    trainee: str,
    change: str,
    cause: str,
    reason: str,
    error: PeopleError,
) -> PeopleError:
    with store.transaction() as tx:
        tx.append(
            AccountChangeRefused(
                by=who.account.name,
                reason=reason,
                terminal=who.terminal,
                name=trainee,
                change=change,
                cause=cause,
            )
        )
    return error


def _authority(tx: SiteTx, who: Authenticated, trainee: str) -> tuple[str, PeopleError] | None:
    """Why ``who`` may not record or revoke training of ``trainee`` now, if so."""
    if trainee == who.account.name:
        return "self", PermissionRefusedError(
            f"{trainee} may not record or revoke their own training; another supervisor or QA must"
        )
    actor = confirm_account(tx.conn, who.account.name)
    cause = None if actor is None else account_refusal(actor[0], tx.wall_time_ns)
    if actor is None or cause is not None:
        return str(cause), PermissionRefusedError(f"{who.account.name} may not act: {cause}")
    if Permission.TRAINING_RECORD not in permissions_of(actor[0].roles):
        return "permission", PermissionRefusedError(
            f"{who.account.name} ({', '.join(actor[0].roles)}) may not record training;"
            " a supervisor or QA does"
        )
    target = confirm_account(tx.conn, trainee)
    if target is None or target[0].status != "active":
        state = "no such account" if target is None else f"account is {target[0].status}"
        return "trainee_not_active", PeopleError(f"training for {trainee!r} refused: {state}")
    return None


def _default_expiry(policy: SitePolicy, trained_on: date) -> date | None:
    if policy.training_validity_days is None:
        raise BadInputError(
            "the site policy sets no training validity: give --expires DATE (or none)"
        )
    return trained_on + timedelta(days=policy.training_validity_days)


def record_training(
    store: SiteStore,
    who: Authenticated,
    trainee: str,
    subject: TrainingSubject,
    *,
    trained_on: date | None = None,
    expires_on: date | Literal["default"] | None = DEFAULT,
    evidence: str = "",
    reason: str = "",
) -> SiteRef:
    """Record that ``trainee`` was trained on ``subject``.

    ``trained_on``: default today (site time zone); ``expires_on``: default
    ``trained_on`` + the policy's ``training_validity_days``; None (no expiry) only
    when the policy sets no validity."""
    change = f"record training {subject_text(subject)}"
    with store.reading() as conn:
        policy, _ = current_policy(conn)
    result: SiteRef | tuple[str, PeopleError]
    with store.transaction() as tx:
        day = trained_on or site_date(policy, tx.wall_time_ns)
        if day > site_date(policy, tx.wall_time_ns):
            raise BadInputError(f"--trained-on {day} is in the future")
        until = _default_expiry(policy, day) if expires_on == DEFAULT else expires_on
        if until is None and policy.training_validity_days is not None:
            raise BadInputError(
                f"training expires (site policy: {policy.training_validity_days} days);"
                " give --expires DATE or leave it out"
            )
        if until is not None and until < day:
            raise BadInputError(f"--expires {until} is before --trained-on {day}")
        refused = _authority(tx, who, trainee)
        if refused is None:
            result = tx.append(
                TrainingRecorded(
                    by=who.account.name,
                    reason=reason,
                    terminal=who.terminal,
                    trainee=trainee,
                    subject=subject,
                    trained_on=day,
                    expires_on=until,
                    evidence=evidence,
                )
            )
        else:
            result = refused
    if isinstance(result, SiteRef):
        return result
    raise _refuse_in(store, who, trainee, change, result[0], reason, result[1])


def revoke_training(
    store: SiteStore, who: Authenticated, trainee: str, subject: TrainingSubject, *, reason: str
) -> SiteRef:
    """Revoke a training record (the subject exactly as it was recorded)."""
    change = f"revoke training {subject_text(subject)}"
    result: SiteRef | tuple[str, PeopleError]
    with store.transaction() as tx:
        refused = _authority(tx, who, trainee)
        row = tx.conn.execute(
            "SELECT revoked FROM training WHERE trainee = ? AND subject_kind = ? AND subject = ?"
            " AND version = ?",
            (trainee, subject.kind, subject.name, subject.version or ""),
        ).fetchone()
        if refused is None and (row is None or row[0]):
            state = "was never recorded" if row is None else "is revoked already"
            refused = (
                "no_training",
                PeopleError(
                    f"training of {trainee} for {subject_text(subject)} {state};"
                    f" `cellauto training list {trainee}` shows it"
                ),
            )
        if refused is None:
            result = tx.append(
                TrainingRevoked(
                    by=who.account.name,
                    reason=reason,
                    terminal=who.terminal,
                    trainee=trainee,
                    subject=subject,
                )
            )
        else:
            result = refused
    if isinstance(result, SiteRef):
        return result
    raise _refuse_in(store, who, trainee, change, result[0], reason, result[1])
