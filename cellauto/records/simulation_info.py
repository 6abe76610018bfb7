"""What a simulated run's ``run_started`` says about the simulation behind it."""

from __future__ import annotations

from pydantic import BaseModel, Field

from cellauto.records.payload_base import FROZEN

__all__ = ["SimulationInfo"]


class SimulationInfo(BaseModel):
    """The simulated patient of a run on a simulated line (None for a real line).

    A reviewer, the trends and the fidelity table read which patient a simulated
    batch had; the models' versions say which models made its cells behave so.
    """

    model_config = FROZEN

    population: str | None = Field(
        description="the population the patient came from; None: no starting material"
    )
    patient: dict[str, float | str] | None = Field(
        description="the patient profile, flat (`starting_material.viable_cells`, ...)"
    )
    patient_choice: str = Field(description='"drawn", "typical" or "given"')
    model_versions: dict[str, str] = Field(default_factory=dict)
