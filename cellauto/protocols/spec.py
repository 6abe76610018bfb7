"""Specifications for in-process checks (defined with the records that carry them)."""

from __future__ import annotations

from cellauto.records.payloads import CheckResult
from cellauto.records.spec import CheckPolicy, Spec

__all__ = ["CheckPolicy", "CheckResult", "Spec"]
