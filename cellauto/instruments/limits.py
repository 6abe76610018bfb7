"""What an instrument says when it worked beyond one of its limits."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["LimitFlag"]


class LimitFlag(BaseModel):
    """One limit an instrument met or passed while it still gave a result: a wash over
    the processor's capacity, a freezer chamber over its rated load."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    quantity: str
    """What was beyond the limit: "input cells", "chamber load"."""
    value: float
    limit: float
    unit: str = ""
    message: str
    """What the instrument did about it: "membrane pressure high: recovery reduced"."""
