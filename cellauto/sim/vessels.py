"""Culture vessels: how much they hold, how many cells they carry, what gas and probes.

| vessel | volume | capacity | gas, probes |
|---|---|---|---|
| rocking bag 1 L | 0.3-1 L | 1e7 viable/mL (PROCESS.md) | controlled CO2 (pH set point), pH probe |
| G-Rex 10 | 40-100 mL | 2.5e7 viable per cm2 of 10 cm2 | incubator 5 % CO2, no probe |
| G-Rex 100M | 0.1-1 L | 2.5e7 viable per cm2 of 100 cm2 | incubator 5 % CO2, no probe |

In a G-Rex the cells settle on a gas-permeable membrane: oxygen comes through it, so
capacity goes with membrane area, and the medium height sets the glucose per cell.
Sources: Vera JF et al. 2010 *J Immunother* (G-Rex); Bajgain P et al. 2014 *Mol Ther
Methods Clin Dev* (G-Rex M series) (?); PROCESS.md (2-3e9 per 100 cm2);
``docs/simulation-sources.md``, "Patients and culture".
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from cellauto.sim.kinetics import CultureModel

__all__ = ["GREX_10", "GREX_100M", "ROCKING_BAG_1L", "VesselModel"]


class VesselModel(BaseModel):
    """One kind of culture vessel."""

    model_config = ConfigDict(frozen=True)

    name: str
    max_volume_ml: float = Field(gt=0)
    max_viable_cells_per_ml: float = Field(1.0e7, gt=0, description="volume-limited vessels")
    membrane_area_cm2: float | None = Field(None, gt=0, description="gas-permeable base")
    viable_cells_per_cm2: float = Field(2.5e7, gt=0)
    static: bool = Field(False, description="does not rock or perfuse")
    ph_probe: bool = True
    co2_control: bool = Field(True, description="holds a pH set point by its CO2")

    def culture_model(self, base: CultureModel | None = None) -> CultureModel:
        """``base`` with this vessel's carrying capacity."""
        base = base or CultureModel()
        if self.membrane_area_cm2 is None:
            return base.model_copy(update={"max_viable_cells_per_ml": self.max_viable_cells_per_ml})
        return base.model_copy(
            update={"max_viable_cells": self.membrane_area_cm2 * self.viable_cells_per_cm2}
        )


ROCKING_BAG_1L = VesselModel(name="rocking bag 1 L", max_volume_ml=1000.0)
GREX_10 = VesselModel(
    name="G-Rex 10",
    max_volume_ml=100.0,
    membrane_area_cm2=10.0,
    static=True,
    ph_probe=False,
    co2_control=False,
)
GREX_100M = VesselModel(
    name="G-Rex 100M",
    max_volume_ml=1000.0,
    membrane_area_cm2=100.0,
    static=True,
    ph_probe=False,
    co2_control=False,
)
