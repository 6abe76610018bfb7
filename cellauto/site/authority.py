"""The site's answer to a controller asking "may this person answer this task?".

A runner's ``TaskBoard`` (:mod:`cellauto.protocols.tasks`) checks each answer through
an injectable ``Authority``; :class:`SiteAuthority` is the site's: the signer's account
is active with a password of their own, their roles grant the task's permission (its
``summary.permission`` to perform, ``step.verify`` to verify or reject) and they hold
valid training for the task's subjects, and a verifier is not the performer — the
same checks :func:`~cellauto.site.signatures.sign` made when the answer was signed,
made again when the controller takes the answer up (it is the authoritative one).
It is typed structurally, so this layer imports nothing of the runner.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from cellauto.records.backend import Conn
from cellauto.records.refs import Meaning, RecordRef, SiteRef
from cellauto.records.site_payloads import Signature, TrainingSubject
from cellauto.site._chain import stored_site_record
from cellauto.site.roles import Permission
from cellauto.site.signatures import signer_refusal

__all__ = ["SiteAuthority"]


class _Signature(Protocol):
    @property
    def signer(self) -> str: ...
    @property
    def meaning(self) -> Meaning: ...


class _Shown(Protocol):
    @property
    def signer(self) -> str: ...
    @property
    def meaning(self) -> Meaning: ...
    @property
    def site(self) -> SiteRef | None: ...
    @property
    def simulated(self) -> bool: ...


class _Answer(Protocol):
    @property
    def phase(self) -> str: ...
    @property
    def signature(self) -> _Signature: ...
    @property
    def simulated(self) -> bool: ...


class _Summary(Protocol):
    @property
    def permission(self) -> str: ...
    @property
    def training(self) -> Sequence[TrainingSubject]: ...


class _Task(Protocol):
    @property
    def summary(self) -> _Summary: ...


class SiteAuthority:
    """Answers' authority from the site chain of a journal (``reading``: a read-only
    connection to it, e.g. ``SiteStore.reading``)."""

    def __init__(
        self,
        reading: Callable[[], AbstractContextManager[Conn]],
        *,
        now_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self._reading = reading
        self._now_ns = now_ns

    def approval_refusal(
        self, approval: _Shown, permission: str, *, signs: RecordRef | None = None
    ) -> str | None:
        """Why ``approval`` (a supervisor's signature approving a Restart after a
        deviation) does not grant ``permission``: the signature record it names is
        missing, changed or another's, it signs another record than ``signs`` (the
        deviation the run holds for), or the signer lacks the permission now."""
        if approval.simulated:
            return "a simulated supervisor's approval on a line run by people"
        if approval.site is None:
            return "the approval names no signature record"
        with self._reading() as conn:
            record = stored_site_record(conn, approval.site.seq)
            signed = None if record is None else record.payload
            if (
                record is None
                or record.hash != approval.site.hash
                or not isinstance(signed, Signature)
                or (signed.signer, signed.meaning) != (approval.signer, approval.meaning)
            ):
                return f"site record {approval.site.seq} is not {approval.signer}'s signature"
            if signs is not None and _place(signed.signed) != _place(signs):
                return (
                    f"site record {approval.site.seq} signs {signed.signed.kind} "
                    f"#{signed.signed.seq} of {signed.signed.run_id or 'the site'}, not the "
                    f"{signs.kind} #{signs.seq} this run holds for"
                )
            return signer_refusal(
                conn,
                approval.signer,
                Permission(permission),
                now_ns=self._now_ns(),
                meaning=approval.meaning,
            )

    def refusal(self, answer: _Answer, task: _Task, performer: str | None) -> str | None:
        """Why ``answer`` may not be taken, or None."""
        if answer.simulated:
            return "a simulated operator's answer on a line run by people"
        verifying = answer.phase == "verify"
        permission = Permission.STEP_VERIFY if verifying else Permission(task.summary.permission)
        with self._reading() as conn:
            return signer_refusal(
                conn,
                answer.signature.signer,
                permission,
                task.summary.training,
                now_ns=self._now_ns(),
                meaning=answer.signature.meaning,
                performer=performer if verifying else None,
            )


def _place(ref: RecordRef) -> tuple[str, str | None, int, str]:
    return ref.chain, ref.run_id, ref.seq, ref.hash
