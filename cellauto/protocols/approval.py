"""Restart after a deviation: a supervisor approves it, with a reason.

A run held because of a deviation (a failed check with the hold policy, a task not
answered in time, a step over its maximum duration) may go on only when someone
allowed to judge the deviation approves: Restart then carries an electronic signature
meaning ``approved`` and a reason, and is refused (and journaled as refused) without
them. Who holds the permission (``run.restart_after_deviation``, supervisors) is the
site's to say, through the run's :class:`~cellauto.protocols.tasks.Authority`.

In a run answered by simulated operators the simulated supervisor approves when no
approval is given (its signature is marked simulated); a run answered by people never
takes a simulated approval.
"""

from __future__ import annotations

from typing import Literal

from cellauto.protocols.tasks import Authority
from cellauto.records.models import utc_from_epoch_s
from cellauto.records.refs import Meaning, RecordRef, SignatureShown

__all__ = ["RESTART_AFTER_DEVIATION", "SIMULATED_SUPERVISOR", "restart_approval"]

RESTART_AFTER_DEVIATION = "run.restart_after_deviation"
"""The permission an approval of a Restart after a deviation needs."""
SIMULATED_SUPERVISOR = ("sim:supervisor", "Simulated supervisor")


def restart_approval(
    cause: RecordRef,
    approval: SignatureShown | None,
    reason: str,
    *,
    operators: Literal["people", "simulated"],
    authority: Authority | None,
    now_s: float,
) -> tuple[SignatureShown | None, str | None]:
    """(the approval to record, why the Restart is refused or None)."""
    if approval is None and operators == "simulated":
        signer, printed_name = SIMULATED_SUPERVISOR
        approval = SignatureShown(
            signer=signer,
            printed_name=printed_name,
            meaning=Meaning.APPROVED,
            signed_at=utc_from_epoch_s(now_s),
            time_zone="UTC",
            utc_offset="+00:00",
            site=None,
            simulated=True,
        )
    what = f"Restart after the deviation (record #{cause.seq})"
    if approval is None:
        return None, (
            f"{what} needs a supervisor's approval: a signature meaning 'approved' by "
            "someone allowed to restart after a deviation, and a reason"
        )
    if approval.meaning is not Meaning.APPROVED:
        return approval, f"{what} needs a signature meaning 'approved', not {approval.meaning}"
    if not reason.strip():
        return approval, f"{what} needs a reason (what was found, why the batch may go on)"
    if operators == "people" and approval.simulated:
        return approval, f"{what}: {approval.signer} is simulated; this run is answered by people"
    if authority is not None:
        refused = authority.approval_refusal(approval, RESTART_AFTER_DEVIATION, signs=cause)
        if refused is not None:
            return approval, f"{what}: {refused}"
    return approval, None
