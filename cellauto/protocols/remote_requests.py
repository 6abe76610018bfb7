"""Commands requested from other terminals, as a controller reads and applies them.

A ``run_requests`` row names a ``run_command_requested`` site record; the face wrote
the requester's signature of it (and, for a Restart after a deviation by a supervisor,
an ``approved`` signature of the deviation) in the same transaction.
:func:`read_remote_request` reads them back, each checked against its stored hash;
:func:`apply_request` applies the command to the run with the requester's signature
and the request's site record on the Command record, or refuses it (journaled as a
refused Command): the signer must hold the command's permission now (the run's
``Authority``), the run's state must allow it, and a Restart after a deviation needs a
supervisor's approval (:mod:`cellauto.protocols.approval`).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from cellauto.errors import CellautoError
from cellauto.protocols.execution import Execution
from cellauto.protocols.states import Command
from cellauto.protocols.tasks import TaskAnswer
from cellauto.records import payloads as rec
from cellauto.records.backend import Conn
from cellauto.records.refs import RecordRef, SignatureShown, SiteRef
from cellauto.records.site_payloads import RunCommandRequested, Signature, TrainingSubject
from cellauto.records.task_rows import RequestRow
from cellauto.site._chain import stored_site_record
from cellauto.site.authority import SiteAuthority
from cellauto.site.signatures import shown

__all__ = ["RemoteRequest", "RunsAuthority", "apply_request", "read_remote_request"]

COMMAND_PERMISSION = {
    "hold": "run.hold",
    "restart": "run.restart",
    "stop": "run.stop",
    "abort": "run.abort",
}


class RemoteRequest(NamedTuple):
    """A request as read back: its site record, reason, signature and approval."""

    ref: SiteRef
    reason: str
    signature: SignatureShown
    approval: SignatureShown | None


def read_remote_request(conn: Conn, row: RequestRow) -> RemoteRequest | str:
    """The request a row names, its signature and an approval (checked against hashes);
    a text saying why it cannot be read."""
    try:
        head = stored_site_record(conn, row.site_seq)
        if (
            head is None
            or head.hash != row.site_hash
            or not isinstance(head.payload, RunCommandRequested)
            or head.payload.run_id != row.run_id
            or head.payload.command != row.command
        ):
            return f"site record {row.site_seq} is not the request the row names"
        target = RecordRef(chain="site", seq=head.seq, hash=head.hash, kind="run_command_requested")
        signature: SignatureShown | None = None
        approval: SignatureShown | None = None
        for seq in (row.site_seq + 1, row.site_seq + 2):
            found = stored_site_record(conn, seq)
            if found is None or found.wall_time_ns != head.wall_time_ns:
                break
            signed = found.payload
            if not isinstance(signed, Signature) or signed.signer != head.payload.by:
                break
            if signed.signed == target:
                signature = shown(signed, found.ref)
            elif signed.signed.chain == "run" and signed.signed.run_id == row.run_id:
                approval = shown(signed, found.ref)
    except CellautoError as exc:
        return str(exc)
    if signature is None:
        return f"request {row.request_id} carries no signature of its requester"
    return RemoteRequest(head.ref, head.payload.reason, signature, approval)


Settled = tuple[Literal["applied", "refused"], str, int | None]


def apply_request(execution: Execution, row: RequestRow, request: RemoteRequest) -> Settled:
    """Apply (or refuse, journaled) the command; (status, outcome, the Command's seq)."""
    command = Command(row.command.capitalize())
    signature = request.signature
    authority = execution.tasks.authority
    refusal = (
        None
        if authority is None
        else authority.approval_refusal(signature, COMMAND_PERMISSION[row.command])
    )
    if refusal is not None:
        execution._record_command(
            command,
            signature.signer,
            request.reason,
            refusal=f"{row.command} requested by {signature.signer} refused: {refusal}",
            signature=signature,
            request=request.ref,
        )
        return "refused", refusal, execution.last_command_seq
    try:
        execution.command(
            command,
            by=signature.signer,
            reason=request.reason,
            approval=request.approval or signature,
            request=request.ref,
        )
    except CellautoError as exc:  # the state, or a Restart after a deviation unapproved
        return "refused", str(exc), execution.last_command_seq
    return "applied", f"{command.value} applied", execution.last_command_seq


class RunsAuthority:
    """The site's authority, with training on the answered run's protocol required too."""

    def __init__(self, site: SiteAuthority, runs: dict[str, Execution]) -> None:
        self._site = site
        self._runs = runs

    def refusal(
        self, answer: TaskAnswer, task: rec.TaskOpened, performer: str | None
    ) -> str | None:
        execution = self._runs.get(answer.run_id)
        if execution is not None:
            protocol = execution.protocol
            subject = TrainingSubject(kind="protocol", name=protocol.name, version=protocol.version)
            summary = task.summary
            if subject not in summary.training:
                needed = summary.model_copy(update={"training": [*summary.training, subject]})
                task = task.model_copy(update={"summary": needed})
        return self._site.refusal(answer, task, performer)

    def approval_refusal(
        self, approval: SignatureShown, permission: str, *, signs: RecordRef | None = None
    ) -> str | None:
        return self._site.approval_refusal(approval, permission, signs=signs)
