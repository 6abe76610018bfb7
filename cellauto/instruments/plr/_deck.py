"""The deck the adapter builds: bags, tubes in racks, tip racks and a trash.

Every container is a PyLabRobot resource named by our container id, so PyLabRobot's
trackers and logs speak the line's language. Bags are troughs on the deck (a sampling
port is reached like a reservoir); counting vials, QC and formulation tubes sit in
24-place tube racks, added as needed. Tips are 1000 µL wide-bore filter tips (wide
bore spares the cells shear), in 96-tip racks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pylabrobot.resources import (
    Container,
    Coordinate,
    Deck,
    ResourceHolder,
    TipRack,
    TipSpot,
    Trash,
    Trough,
    Tube,
    TubeRack,
)
from pylabrobot.resources.hamilton import hamilton_96_tiprack_1000uL_filter_wide
from pylabrobot.resources.utils import create_ordered_items_2d

from cellauto.errors import BadInputError, InstrumentError

__all__ = ["ContainerSpec", "DeckLayout"]

TipRackFactory = Callable[[str], TipRack]

_PITCH_MM = 160.0  # spacing of deck positions along x
_RACK_PLACES = (6, 4)  # tube rack: 6 columns x 4 rows


class ContainerSpec(BaseModel):
    """A container placed on the deck, named by its container id on the line."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    container_id: str = Field(min_length=1, max_length=80)
    kind: Literal["bag", "tube"] = "tube"
    capacity_ul: float = Field(gt=0, allow_inf_nan=False)
    volume_ul: float = Field(0.0, ge=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _fits(self) -> ContainerSpec:
        if self.volume_ul > self.capacity_ul:
            raise ValueError(
                f"container {self.container_id!r}: volume_ul {self.volume_ul:g} is above its "
                f"capacity_ul {self.capacity_ul:g}"
            )
        return self


def _tube_rack(name: str) -> TubeRack:
    columns, rows = _RACK_PLACES
    return TubeRack(
        name=name,
        size_x=127.8,
        size_y=85.5,
        size_z=80.0,
        ordered_items=create_ordered_items_2d(
            ResourceHolder,
            num_items_x=columns,
            num_items_y=rows,
            dx=4.0,
            dy=4.0,
            dz=5.0,
            item_dx=20.0,
            item_dy=20.0,
            size_x=19.0,
            size_y=19.0,
            size_z=75.0,
        ),
    )


class DeckLayout:
    """The resources on one liquid handler's deck, looked up by container id."""

    def __init__(
        self,
        *,
        tip_racks: int = 2,
        tip_rack_factory: TipRackFactory = hamilton_96_tiprack_1000uL_filter_wide,
    ) -> None:
        if tip_racks < 1:
            raise BadInputError(f"a liquid handler needs at least one tip rack, not {tip_racks}")
        self.deck = Deck(size_x=4000.0, size_y=600.0, size_z=500.0, name="deck")
        self.deck.assign_child_resource(Trash("trash", 100.0, 100.0, 100.0), Coordinate(0, 0, 0))
        self.tip_racks: list[TipRack] = []
        for index in range(tip_racks):
            rack = tip_rack_factory(f"tips_{index + 1}")
            self.deck.assign_child_resource(rack, location=self._place(index, y=440.0))
            self.tip_racks.append(rack)
        tip = self.tip_racks[0].get_item(0).get_tip()
        self._tip_capacity_ul = float(tip.nominal_volume or tip.maximal_volume)
        self.containers: dict[str, Container] = {}
        self._tube_racks: list[TubeRack] = []
        self._bags = 0

    @staticmethod
    def _place(index: int, *, y: float) -> Coordinate:
        return Coordinate(x=150.0 + index * _PITCH_MM, y=y, z=0.0)

    # -- containers -----------------------------------------------------------------

    def load(self, spec: ContainerSpec) -> Container:
        """Place a container on the deck (a bag as a trough, a tube in a rack)."""
        name = spec.container_id
        if self.deck.has_resource(name):
            what = "a container" if name in self.containers else "a deck resource"
            raise BadInputError(f"{name!r} is already {what} on the deck; ids must be unique")
        container: Container
        if spec.kind == "bag":
            container = Trough(name, 120.0, 80.0, 60.0, max_volume=spec.capacity_ul)
            self.deck.assign_child_resource(container, location=self._place(self._bags, y=240.0))
            self._bags += 1
        else:
            container = Tube(name, 18.0, 18.0, 70.0, max_volume=spec.capacity_ul)
            self._free_rack_place().assign_child_resource(container)
        container.tracker.set_volume(spec.volume_ul)
        self.containers[name] = container
        return container

    def _free_rack_place(self) -> ResourceHolder:
        for rack in self._tube_racks:
            for holder in rack.get_all_items():
                if holder.resource is None:
                    return holder
        rack = _tube_rack(f"tube_rack_{len(self._tube_racks) + 1}")
        self.deck.assign_child_resource(rack, location=self._place(len(self._tube_racks), y=40.0))
        self._tube_racks.append(rack)
        return rack.get_item(0)

    def unload(self, container_id: str) -> None:
        """Take a container off the deck (its rack place becomes free)."""
        container = self.containers.pop(container_id, None)
        if container is not None:
            container.unassign()

    def get(self, container_id: str, *, where: str) -> Container:
        try:
            return self.containers[container_id]
        except KeyError:
            known = ", ".join(sorted(self.containers)) or "none"
            raise InstrumentError(
                f"{where}: no container {container_id!r} on the deck; known: {known}"
            ) from None

    # -- tips -----------------------------------------------------------------------

    def tip_spots(self) -> list[TipSpot]:
        return [spot for rack in self.tip_racks for spot in rack.get_all_items()]

    def next_tip_spot(self) -> TipSpot | None:
        return next((spot for spot in self.tip_spots() if spot.has_tip()), None)

    def tips_remaining(self) -> int:
        return sum(1 for spot in self.tip_spots() if spot.has_tip())

    def tip_capacity_ul(self) -> float:
        """The working (nominal) volume of the loaded tips."""
        return self._tip_capacity_ul

    @staticmethod
    def spot_id(spot: TipSpot) -> str:
        """A tip position for the record, e.g. ``tips_1:A1``."""
        rack = spot.parent
        return f"{rack.name}:{spot.get_identifier()}" if rack is not None else spot.name

    def reload_tips(self) -> None:
        """Fresh tip racks were loaded: every tip position is full again."""
        for rack in self.tip_racks:
            rack.fill()
