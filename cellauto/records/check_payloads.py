"""The payloads of check records: a value against its specification, a label against
what was ordered. Each carries a verdict readers recompute. Importable from
:mod:`cellauto.records.payloads`.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from cellauto.records.kinds import RecordKind
from cellauto.records.payload_base import Payload
from cellauto.records.spec import Spec

__all__ = ["CheckResult", "IdentityCheck"]


class CheckResult(Payload):
    """An in-process check of a value against its specification."""

    kind: ClassVar[RecordKind] = RecordKind.CHECK_RESULT

    step: str
    check: str
    value: float
    spec: Spec
    passed: bool
    """The verdict the runner acted on; readers recompute it (:attr:`recomputed`)."""
    flags: list[str] = Field(default_factory=list)
    """What qualifies the value, which is recorded unchanged: "above 100 % within
    counting uncertainty", "count outside the counter's linear range"."""

    @property
    def recomputed(self) -> bool:
        """The verdict recomputed from ``value`` and ``spec``."""
        return self.spec.accepts(self.value)

    def verdict_problem(self) -> str | None:
        if self.passed == self.recomputed:
            return None
        stored = "pass" if self.passed else "fail"
        actual = "passes" if self.recomputed else "fails"
        return (
            f"the stored verdict says {stored} but {self.value:g} {actual} {self.spec.describe()}"
        )


class IdentityCheck(Payload):
    """A chain-of-identity check: what was scanned against what was ordered."""

    kind: ClassVar[RecordKind] = RecordKind.IDENTITY_CHECK

    step: str | None
    check: str
    observed: str
    """The label data as scanned."""
    identifier: str | None
    """The identifier decoded from it; None if it could not be decoded."""
    expected: str
    passed: bool
    problem: str | None = None
    """Why the label could not be decoded (e.g. a wrong check character)."""

    @property
    def recomputed(self) -> bool:
        return self.problem is None and self.identifier == self.expected

    def verdict_problem(self) -> str | None:
        if self.passed == self.recomputed:
            return None
        stored = "match" if self.passed else "mismatch"
        return (
            f"the stored verdict says {stored} but identifier {self.identifier!r} "
            f"{'matches' if self.recomputed else 'does not match'} {self.expected!r}"
        )
