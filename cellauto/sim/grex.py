"""Simulated G-Rex-type static culture vessel: a gas-permeable membrane in an incubator.

Seeded, fed, dosed, sampled and harvested like the rocking bag (the same
:class:`~cellauto.sim.culture.Culture`, the same fault ledger), but it does not rock
or perfuse, its carrying capacity goes with membrane area, its medium sits under the
incubator's 5 % CO2 with no pH control, and it has no pH or oxygen probe. Before
harvest the supernatant above the settled cells is aspirated
(:meth:`SimGRex.reduce_volume`). Vessel figures: :mod:`cellauto.sim.vessels`.
"""

from __future__ import annotations

import anyio

from cellauto.errors import OutOfRangeError
from cellauto.instruments.base import require_range
from cellauto.instruments.bioreactor import CultureVolume, Setpoints, StaticCultureVessel
from cellauto.sim.bioreactor import SimBioreactor
from cellauto.sim.vessels import GREX_100M, VesselModel

__all__ = ["SimGRex"]


class SimGRex(SimBioreactor, StaticCultureVessel):
    """A G-Rex 100M (100 cm2, up to 1 L); subclass with another ``VESSEL`` for others."""

    interface_name = "StaticCultureVessel"
    VESSEL: VesselModel = GREX_100M
    MODEL_NAME = "SimGRex 100M"
    MIN_VOLUME_ML = 10.0
    """What remains over the membrane after aspiration, at least."""

    async def set_setpoints(self, setpoints: Setpoints) -> Setpoints:
        for field in ("rocking_rate_rpm", "rocking_angle_deg", "perfusion_rate_ml_per_day"):
            value = getattr(setpoints, field)
            if value is not None and value != 0:
                self.guard("set_setpoints", command=True)
                raise OutOfRangeError(
                    f"{self.where}: {field} {value:g}: a static vessel does not rock or perfuse"
                )
        return await super().set_setpoints(setpoints)

    async def reduce_volume(self, to_ml: float) -> CultureVolume:
        self.guard("reduce_volume", command=True)
        culture = self._culture()
        volume = culture.cells.volume_ml
        require_range(self, "to_ml", to_ml, low=self.MIN_VOLUME_ML, high=volume, unit="mL")
        await anyio.sleep(600.0)
        culture.advance_to(self.world.now_h())
        # the cells have settled on the membrane: only medium leaves
        culture.cells.volume_ml = to_ml
        return CultureVolume(culture_volume_ml=to_ml)
