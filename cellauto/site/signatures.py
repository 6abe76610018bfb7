"""Electronic signatures (21 CFR 11.50, 11.70, 11.200; design §4.2).

:func:`sign` runs inside the caller's site transaction (so a task answer and its
signature commit together). It checks, in order: the target record exists and its
stored hash equals both ``sha256(body)`` and the reference's hash; the signer's account
is active, its password neither expired nor administrator-set; its roles grant the
meaning's permission (an administrator signs nothing of a batch); its training covers
``needed_training``; a verifier is not the performer. A refusal raises
:class:`SignatureRefusal`, which rolls the caller's transaction back; the caller then
journals ``refusal.record`` in a transaction of its own and raises ``refusal.error``
(:func:`journal_refusal`; :func:`sign_in_store` does all of it for a lone signature).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple, NoReturn

from cellauto.errors import (
    PeopleError,
    PermissionRefusedError,
    SignatureRefusedError,
    TrainingRequiredError,
)
from cellauto.records.backend import Conn
from cellauto.records.refs import SITE_CHAIN, Meaning, RecordRef, SignatureShown, SiteRef
from cellauto.records.site_payloads import Signature, SignatureRefused, TrainingSubject
from cellauto.records.site_store import SiteStore, SiteTx
from cellauto.site._chain import stored_site_record
from cellauto.site.auth import Authenticated, account_refusal
from cellauto.site.policy import current_policy, utc_datetime, zone_of
from cellauto.site.projection import Account
from cellauto.site.replay import confirm_account
from cellauto.site.roles import Permission, Role, permissions_of
from cellauto.site.signing_check import needed_permission
from cellauto.site.training import TrainingCheck, check_training

__all__ = [
    "SignatureRefusal",
    "journal_refusal",
    "shown",
    "sign",
    "sign_in_store",
    "signer_refusal",
    "utc_offset",
]


class SignatureRefusal(Exception):
    """A refused signature: the record to journal and the error to raise after."""

    def __init__(self, record: SignatureRefused, error: PeopleError) -> None:
        super().__init__(str(error))
        self.record = record
        self.error = error


def journal_refusal(store: SiteStore, refusal: SignatureRefusal) -> NoReturn:
    """Commit the refusal record (its own transaction), then raise its error."""
    with store.transaction() as tx:
        tx.append(refusal.record)
    raise refusal.error


def utc_offset(moment: datetime) -> str:
    """``+01:00`` for an aware datetime."""
    return moment.isoformat()[-6:] if moment.utcoffset() else "+00:00"


def _target_problem(tx: SiteTx, target: RecordRef) -> tuple[str, str] | None:
    if target.chain == SITE_CHAIN:
        row = tx.conn.execute(
            "SELECT kind, body, hash FROM site_records WHERE seq = ?", (target.seq,)
        ).fetchone()
    else:
        row = tx.conn.execute(
            "SELECT kind, body, hash FROM records WHERE run_id = ? AND seq = ?",
            (target.run_id, target.seq),
        ).fetchone()
    where = (
        f"site record {target.seq}"
        if target.chain == SITE_CHAIN
        else f"record {target.seq} of run {target.run_id}"
    )
    if row is None:
        return "target_missing", f"{where} does not exist"
    kind, body, stored = row
    if hashlib.sha256(body.encode("utf-8")).hexdigest() != stored or stored != target.hash:
        return "target_changed", f"{where} is not the record shown for signing (its hash differs)"
    if kind != target.kind:
        return "target_changed", f"{where} is a {kind}, not a {target.kind}"
    return None


class _Problem(NamedTuple):
    cause: str
    detail: str
    error: type[PeopleError]


def _signer_check(
    conn: Conn,
    name: str,
    meaning: Meaning | None,
    permission: Permission,
    needed_training: Sequence[TrainingSubject],
    now_ns: int,
    performer: str | None,
) -> tuple[Account, TrainingCheck] | _Problem:
    """May ``name`` sign (or answer) now: account, permission, training, not performer."""
    confirmed = confirm_account(conn, name)
    if confirmed is None:
        return _Problem("unknown_account", f"no account {name!r}", SignatureRefusedError)
    account = confirmed[0]
    state = account_refusal(account, now_ns)
    if state is not None:
        return _Problem(state, f"account {name!r}: {state}", SignatureRefusedError)
    if Role.ADMINISTRATOR in account.roles or permission not in permissions_of(account.roles):
        what = "act" if meaning is None else f"sign {meaning.value}"
        return _Problem(
            "permission",
            f"{name} ({', '.join(account.roles)}) may not {what}: it needs {permission.value}",
            PermissionRefusedError,
        )
    training = check_training(conn, name, needed_training, now_ns=now_ns)
    if training.gap is not None:
        return _Problem("training", training.gap, TrainingRequiredError)
    if meaning in (Meaning.VERIFIED, Meaning.REJECTED) and performer == name:
        return _Problem(
            "self_verification",
            f"{name} performed this step and may not verify it; another person must",
            SignatureRefusedError,
        )
    return account, training


def signer_refusal(
    conn: Conn,
    name: str,
    permission: Permission,
    needed_training: Sequence[TrainingSubject] = (),
    *,
    now_ns: int,
    meaning: Meaning | None = None,
    performer: str | None = None,
) -> str | None:
    """Why ``name`` may not act with ``permission`` now (the checks :func:`sign` makes of
    the signer), or None: for a controller taking up an answer (its ``Authority``)."""
    outcome = _signer_check(conn, name, meaning, permission, needed_training, now_ns, performer)
    return outcome.detail if isinstance(outcome, _Problem) else None


def sign(
    tx: SiteTx,
    who: Authenticated,
    target: RecordRef,
    meaning: Meaning,
    statement: str,
    *,
    needed_training: Sequence[TrainingSubject] = (),
    performer: str | None = None,
    permission: Permission | None = None,
    task_id: str | None = None,
) -> SiteRef:
    """Append ``who``'s signature of ``target`` with ``meaning`` (see the module doc).

    ``permission``: what the caller expects the act to need; it is always the one verify
    recomputes (:func:`~cellauto.site.signing_check.needed_permission`: a command
    request's permission, ``run.restart_after_deviation`` to approve a run's deviation,
    else the meaning's), and a different one is refused; ``performer``: who performed the step,
    for ``verified``/``rejected``; ``task_id``: named in a refusal."""
    name = who.account.name

    def refuse(cause: str, detail: str, error: type[PeopleError]) -> SignatureRefusal:
        record = SignatureRefused(
            by=name,
            terminal=who.terminal,
            name=name,
            meaning=meaning,
            target=target,
            task_id=task_id,
            run_id=target.run_id,
            cause=cause,
            detail=detail,
        )
        return SignatureRefusal(record, error(f"signature refused: {detail}"))

    problem = _target_problem(tx, target)
    if problem is not None:
        raise refuse(*problem, SignatureRefusedError)
    signed = stored_site_record(tx.conn, target.seq) if target.chain == SITE_CHAIN else None
    needed = needed_permission(meaning, target, None if signed is None else signed.payload)
    if permission is not None and permission != needed:
        raise refuse(
            "permission",
            f"a signature meaning {meaning.value} of {target.kind} #{target.seq} needs "
            f"{needed.value}, not {permission.value}: verify would judge it so",
            PermissionRefusedError,
        )
    permission = needed
    outcome = _signer_check(
        tx.conn, name, meaning, permission, needed_training, tx.wall_time_ns, performer
    )
    if isinstance(outcome, _Problem):
        raise refuse(outcome.cause, outcome.detail, outcome.error)
    account, training = outcome
    policy, _ = current_policy(tx.conn)
    signed_at = utc_datetime(tx.wall_time_ns)
    return tx.append(
        Signature(
            by=name,
            terminal=who.terminal,
            signer=name,
            printed_name=account.full_name,
            meaning=meaning,
            statement=statement,
            signed=target,
            signed_at=signed_at,
            time_zone=policy.time_zone,
            utc_offset=utc_offset(signed_at.astimezone(zone_of(policy))),
            session_id=who.session_id,
            components=who.components,
            roles=list(account.roles),
            training=training.relied_on,
        )
    )


def sign_in_store(
    store: SiteStore,
    who: Authenticated,
    target: RecordRef,
    meaning: Meaning,
    statement: str,
    *,
    needed_training: Sequence[TrainingSubject] = (),
    performer: str | None = None,
    permission: Permission | None = None,
) -> SiteRef:
    """A lone signature in its own transaction; a refusal journaled, then raised."""
    try:
        with store.transaction() as tx:
            return sign(
                tx,
                who,
                target,
                meaning,
                statement,
                needed_training=needed_training,
                performer=performer,
                permission=permission,
            )
    except SignatureRefusal as refusal:
        journal_refusal(store, refusal)


def shown(signature: Signature, ref: SiteRef | None) -> SignatureShown:
    """What a run record embeds of a signature (``ref``: its site record)."""
    return SignatureShown(
        signer=signature.signer,
        printed_name=signature.printed_name,
        meaning=signature.meaning,
        signed_at=signature.signed_at,
        time_zone=signature.time_zone,
        utc_offset=signature.utc_offset,
        site=ref,
        simulated=False,
    )
