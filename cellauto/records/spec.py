"""Specifications of in-process checks, and what happens when a check fails.

They live with the records because a ``check_result`` record carries its spec, and
every reader (show, export, reports) recomputes the verdict from value and spec.
"""

from __future__ import annotations

import math
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["CheckPolicy", "Spec"]


class CheckPolicy(StrEnum):
    """What the runner does after a failed check (a Deviation is always recorded)."""

    HOLD = "hold"
    CONTINUE = "continue"
    ABORT = "abort"


class Spec(BaseModel):
    """Specification limits (inclusive) of one in-process check.

    ``Spec(min=70, unit="%")`` accepts 70 and above; ``policy`` decides what a
    failure does: hold (default), continue or abort.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    min: float | None = None
    max: float | None = None
    unit: str = ""
    policy: CheckPolicy = CheckPolicy.HOLD
    description: str = Field("", description="the attribute in words, for the batch record")

    @model_validator(mode="after")
    def _limits(self) -> Spec:
        if self.min is None and self.max is None:
            raise ValueError("a Spec needs at least one limit: min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"Spec min {self.min} is above max {self.max}")
        return self

    def accepts(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.min is not None and value < self.min:
            return False
        return not (self.max is not None and value > self.max)

    def describe(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        if self.min is not None and self.max is not None:
            return f"{self.min:g}..{self.max:g}{unit}"
        if self.min is not None:
            return f">= {self.min:g}{unit}"
        return f"<= {self.max:g}{unit}"
