"""Chain-of-identity checks a step makes (``run.identity``), and the abort they (and a
failed check with the abort policy) raise. Importable from :mod:`.context`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cellauto.errors import IdentityMismatchError
from cellauto.records import payloads as rec
from cellauto.records.spec import CheckPolicy

if TYPE_CHECKING:
    from cellauto.protocols.context import Run
    from cellauto.protocols.people import OnTimeout

__all__ = ["ChainOfIdentity", "RunAborted"]


class RunAborted(BaseException):
    """Raised inside a step to abort the run (a failed check or identity with abort policy).

    A BaseException so that a protocol's ``except Exception`` cannot swallow it.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ChainOfIdentity:
    """Chain-of-identity checks: what was scanned must match what was ordered."""

    def __init__(self, run: Run) -> None:
        self._run = run

    async def confirm_label(
        self,
        name: str,
        *,
        expected: str,
        instruction: str,
        key: str | None = None,
        timeout_h: float | None = None,
        on_timeout: OnTimeout = "hold",
        sim: Any = None,
    ) -> str:
        """Two people read a label (an operator task verified by a second person); it is
        recorded as an identity check: a mismatch is a deviation and aborts."""
        from cellauto.protocols import people  # it builds on this module

        return await people.confirm_label(
            self._run,
            name,
            expected=expected,
            instruction=instruction,
            key=key,
            timeout_h=timeout_h,
            on_timeout=on_timeout,
            sim=sim,
        )

    def expect(
        self,
        observed: Any,
        expected: str,
        *,
        what: str = "chain of identity",
        decode: Callable[[str], str] | None = None,
    ) -> None:
        """Record the comparison; a mismatch (or an unreadable label) is a deviation and aborts.

        ``decode`` turns scanned barcode data into the identifier (e.g.
        :func:`cellauto.identity.parse_coi_barcode`, which also checks the check
        character).
        """
        scanned = str(getattr(observed, "data", observed))
        problem = None
        identifier = scanned
        if decode is not None:
            try:
                identifier = decode(scanned)
            except (IdentityMismatchError, ValueError) as exc:
                problem = str(exc)
        passed = problem is None and identifier == expected
        execution = self._run._execution
        step = execution.current_step_name
        execution.record(
            rec.IdentityCheck(
                step=step,
                check=what,
                observed=scanned,
                identifier=identifier if problem is None else None,
                expected=expected,
                passed=passed,
                problem=problem,
            )
        )
        if not passed:
            detail = problem or f"scanned {identifier!r}, expected {expected!r}"
            reason = (
                f"step {step!r}: {what} mismatch — {detail}; the material must not be processed"
            )
            execution.deviation(step, what, reason, CheckPolicy.ABORT)
            raise RunAborted(reason)
