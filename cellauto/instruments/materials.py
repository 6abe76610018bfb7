"""Material handles passed between instruments: samples drawn from a container."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Sample(BaseModel):
    """A sample drawn from a container, identified for the record and the counter."""

    model_config = ConfigDict(frozen=True)

    sample_id: str = Field(min_length=1)
    source_container_id: str = Field(min_length=1)
    volume_ml: float = Field(gt=0)
    drawn_at_process_time_s: float
