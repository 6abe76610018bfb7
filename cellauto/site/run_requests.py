"""A person asks a running batch to Hold, Restart, Stop or Abort from another terminal.

:func:`request_command` runs in one site transaction: the run must exist and not have
ended; ``run_command_requested`` is appended and signed by the requester (meaning
``performed``; the permission is the command's: ``run.hold``, ``run.restart``,
``run.stop``, ``run.abort``); for a Restart of a run held by a deviation, a requester
who may restart after a deviation also signs the deviation ``approved`` (the
supervisor's approval the controller asks for); the ``run_requests`` row is put
pending until ``expires_s`` from now. The run's controller applies it (or refuses it,
journaled in the run) and settles the row; nobody taking it up in time, the face
settles it ``expired`` (:func:`expire_request`) and it is never applied late.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Literal, NamedTuple

from cellauto.errors import BadInputError, JournalError, SignatureRefusedError
from cellauto.records.backend import Conn
from cellauto.records.refs import Meaning, RecordRef, SiteRef
from cellauto.records.site_payloads import RunCommandRequested, SignatureRefused
from cellauto.records.site_store import SiteStore, SiteTx
from cellauto.records.task_rows import RequestRow, put_request, read_request, settle_request
from cellauto.site._chain import stored_site_record
from cellauto.site.auth import Authenticated
from cellauto.site.policy import utc_datetime
from cellauto.site.projection import accounts_by_name
from cellauto.site.roles import Permission, Role, permissions_of
from cellauto.site.run_facts import RunFacts, run_facts, stored_run_record
from cellauto.site.signatures import SignatureRefusal, journal_refusal, sign

__all__ = [
    "COMMANDS",
    "RequestGiven",
    "append_request",
    "expire_request",
    "hold_deviation",
    "request_command",
    "request_signatures",
]

CommandName = Literal["hold", "restart", "stop", "abort"]
COMMANDS: tuple[CommandName, ...] = ("hold", "restart", "stop", "abort")


class RequestGiven(NamedTuple):
    """A command request recorded: its row, the signature, and the approval if any."""

    row: RequestRow
    signature: SiteRef
    approval: SiteRef | None


def hold_deviation(conn: Conn, run_id: str) -> RecordRef | None:
    """The deviation (hold policy) the run holds for, if no Restart was accepted since."""
    rows = conn.execute(
        "SELECT seq FROM records WHERE run_id = ? AND kind IN ('deviation', 'command')"
        " ORDER BY seq DESC",
        (run_id,),
    ).fetchall()
    for (seq,) in rows:
        found = stored_run_record(conn, run_id, int(seq))
        if found is None:
            continue
        kind, payload, digest = found
        if kind == "command" and payload.get("command") == "Restart" and payload.get("accepted"):
            return None
        if kind == "deviation" and payload.get("policy") == "hold":
            return RecordRef(chain="run", run_id=run_id, seq=int(seq), hash=digest, kind=kind)
    return None


def _may(conn: Conn, name: str, permission: Permission) -> bool:
    account = accounts_by_name(conn, name).get(name)
    return (
        account is not None
        and Role.ADMINISTRATOR not in account.roles
        and permission in permissions_of(account.roles)
    )


def request_command(
    store: SiteStore,
    who: Authenticated,
    run_id: str,
    command: str,
    *,
    reason: str,
    expires_s: float,
) -> RequestGiven:
    """Record ``who``'s signed request of ``command`` for ``run_id`` (see the module doc).

    BadInputError (nothing written) for an unknown command or no reason; a refusal
    (no such run, the run ended, the permission, the signature) is journaled, then
    raised."""
    if command not in COMMANDS:
        raise BadInputError(f"{command!r} is not a command; one of {', '.join(COMMANDS)}")
    if not reason.strip():
        raise BadInputError(f"{command} needs --reason (why the batch must {command})")
    if expires_s <= 0:
        raise BadInputError("the request must stay valid for some time (--wait-s > 0)")
    name = who.account.name
    try:
        with store.transaction() as tx:
            run = run_facts(tx.conn, run_id)
            if run is None or run.ended:
                detail = f"run {run_id} " + ("does not exist" if run is None else "has ended")
                record = SignatureRefused(
                    by=name,
                    terminal=who.terminal,
                    name=name,
                    meaning=Meaning.PERFORMED,
                    target=None,
                    run_id=run_id,
                    cause="run_not_found" if run is None else "run_ended",
                    detail=detail,
                )
                raise SignatureRefusal(record, SignatureRefusedError(f"refused: {detail}"))
            return append_request(tx, who, run, command, reason=reason, expires_s=expires_s)
    except SignatureRefusal as refusal:
        journal_refusal(store, refusal)


def append_request(
    tx: SiteTx,
    who: Authenticated,
    run: RunFacts,
    command: str,
    *,
    reason: str,
    expires_s: float,
) -> RequestGiven:
    """In the caller's site transaction: ``run_command_requested`` for the active ``run``,
    its signature, a supervisor's approval of the deviation for a Restart, and the
    pending ``run_requests`` row. A refused signature raises :class:`SignatureRefusal`
    (the caller rolls back and journals it)."""
    name = who.account.name
    run_id = run.run_id
    request_id = secrets.token_hex(8)
    expires_ns = tx.wall_time_ns + round(expires_s * 1e9)
    requested = tx.append(
        RunCommandRequested(
            by=name,
            reason=reason,
            terminal=who.terminal,
            request_id=request_id,
            run_id=run_id,
            command=command,
            expires_at=utc_datetime(tx.wall_time_ns) + timedelta(seconds=expires_s),
        )
    )
    target = RecordRef(
        chain="site", seq=requested.seq, hash=requested.hash, kind="run_command_requested"
    )
    signature = sign(
        tx,
        who,
        target,
        Meaning.PERFORMED,
        f"I request {command} of run {run_id} ({run.protocol} {run.version}): {reason}",
    )
    approval = None
    deviation = hold_deviation(tx.conn, run_id) if command == "restart" else None
    if deviation is not None and _may(tx.conn, name, Permission.RUN_RESTART_AFTER_DEVIATION):
        approval = sign(
            tx,
            who,
            deviation,
            Meaning.APPROVED,
            f"I approve the restart of run {run_id} after the deviation "
            f"(record #{deviation.seq}): {reason}",
        )
    row = RequestRow(
        request_id=request_id,
        run_id=run_id,
        command=command,
        site_seq=requested.seq,
        site_hash=requested.hash,
        status="pending",
        expires_wall_ns=expires_ns,
        outcome=None,
        run_seq=None,
    )
    put_request(tx.conn, row)
    return RequestGiven(row, signature, approval)


def expire_request(store: SiteStore, request_id: str) -> RequestRow:
    """Settle a request nobody took up as ``expired`` (unless settled meanwhile); the
    row as it stands after."""
    with store.transaction() as tx:
        settle_request(tx.conn, request_id, "expired", outcome="no controller took it up in time")
        row = read_request(tx.conn, request_id)
    if row is None:
        raise JournalError(f"no request {request_id} in {store.location}")
    return row


def request_signatures(conn: Conn, row: RequestRow) -> list[SiteRef]:
    """The signature records of the request's transaction (its own, then an approval)."""
    head = stored_site_record(conn, row.site_seq)
    refs: list[SiteRef] = []
    if head is None:
        return refs
    for seq in (row.site_seq + 1, row.site_seq + 2):
        found = stored_site_record(conn, seq)
        if found is None or found.wall_time_ns != head.wall_time_ns:
            break
        refs.append(found.ref)
    return refs
