"""A line: the named set of instrument instances a protocol runs against."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from cellauto.errors import EquipmentError
from cellauto.instruments.base import Instrument

if TYPE_CHECKING:
    from cellauto.records.simulation_info import SimulationInfo

__all__ = ["Line"]


class Line:
    """Named instruments, e.g. ``{"counter": SimCellCounter(...), ...}``.

    ``simulated``: the instruments are simulated in this process (virtual time).
    ``rehearsal``: the line is a simulation, wherever its instruments run (in this
    process, or served by ``cellauto sim serve`` to a controller in another): no
    patient's cells are on it, so a run needs no person and simulated operators may
    answer its operator steps. A simulated line is always a rehearsal. ``assets``: the
    registry asset tag of an instrument (else the registry is searched by the vendor,
    model and serial it reports). ``pools``: equipment names given as pools of units
    (pool -> unit -> instrument, :mod:`cellauto.lines.pools`), not in ``equipment``: a
    run drives the view :meth:`with_units` gives, bound to one unit of each;
    ``unit_assets`` their asset tags (pool -> unit -> tag).
    """

    def __init__(
        self,
        name: str,
        equipment: Mapping[str, Instrument],
        *,
        simulated: bool = False,
        rehearsal: bool = False,
        assets: Mapping[str, str] | None = None,
        pools: Mapping[str, Mapping[str, Instrument]] | None = None,
        unit_assets: Mapping[str, Mapping[str, str]] | None = None,
    ):
        for key, instrument in equipment.items():
            if not isinstance(instrument, Instrument):
                raise EquipmentError(
                    f"line {name!r}: equipment {key!r} is {instrument!r}, not an instrument"
                )
        self.name = name
        self.equipment = dict(equipment)
        self.simulated = simulated
        self.rehearsal = rehearsal or simulated
        #: The equipment registry's asset tag of each instrument the line file ties to one.
        self.assets = dict(assets or {})
        #: The simulated patient and models behind a rehearsal (``run_started.simulation``);
        #: None on a real line.
        self.simulation: SimulationInfo | None = None
        self.pools = {pool: dict(units) for pool, units in (pools or {}).items()}
        self.unit_assets = {pool: dict(tags) for pool, tags in (unit_assets or {}).items()}

    def with_units(self, bound: Mapping[str, str]) -> Line:
        """This line as a run bound to ``bound`` (pool -> unit) sees it: each pool's name
        is that unit's instrument (the same object, its connection shared), its asset
        tag the unit's. The other pools are left out."""
        equipment = dict(self.equipment)
        assets = dict(self.assets)
        for pool, unit in bound.items():
            units = self.pools.get(pool)
            if units is None or unit not in units:
                have = ", ".join(sorted(units or {})) or "none"
                raise EquipmentError(
                    f"line {self.name!r}: no unit {unit!r} in pool {pool!r} (units: {have})"
                )
            equipment[pool] = units[unit]
            assets[pool] = self.unit_assets.get(pool, {}).get(unit, unit)
        view = Line(
            self.name,
            equipment,
            simulated=self.simulated,
            rehearsal=self.rehearsal,
            assets=assets,
        )
        view.simulation = self.simulation
        return view

    def instruments(self) -> dict[str, Instrument]:
        """Every instrument of the line, a pool's units under ``POOL@UNIT``."""
        found = dict(self.equipment)
        for pool, units in self.pools.items():
            found.update({f"{pool}@{unit}": instrument for unit, instrument in units.items()})
        return found

    def __repr__(self) -> str:
        return f"<Line {self.name}: {', '.join(self.equipment)}>"

    def provide(self, needed: Mapping[str, type[Instrument]], *, protocol: str) -> None:
        """Refuse, before anything is written, a line lacking what ``needed`` names."""
        problems = []
        for key, interface in needed.items():
            instrument = self.equipment.get(key)
            if instrument is None and key in self.pools:
                problems.append(
                    f"{key!r} is a pool of {len(self.pools[key])} units "
                    f"({', '.join(self.pools[key])}): a controller binds each run to one "
                    "(`cellauto run --queue` and `cellauto controller`)"
                )
            elif instrument is None:
                problems.append(f"missing {key!r} ({interface.__name__})")
            elif not isinstance(instrument, interface):
                problems.append(
                    f"{key!r} is a {type(instrument).__name__}, not a {interface.__name__}"
                )
        if problems:
            have = (
                ", ".join(f"{k} ({type(v).__name__})" for k, v in self.equipment.items())
                or "nothing"
            )
            raise EquipmentError(
                f"protocol {protocol!r} cannot run on line {self.name!r}: "
                + "; ".join(problems)
                + f". The line has: {have}"
            )
