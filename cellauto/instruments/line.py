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
    model and serial it reports).
    """

    def __init__(
        self,
        name: str,
        equipment: Mapping[str, Instrument],
        *,
        simulated: bool = False,
        rehearsal: bool = False,
        assets: Mapping[str, str] | None = None,
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

    def __repr__(self) -> str:
        return f"<Line {self.name}: {', '.join(self.equipment)}>"

    def provide(self, needed: Mapping[str, type[Instrument]], *, protocol: str) -> None:
        """Refuse, before anything is written, a line lacking what ``needed`` names."""
        problems = []
        for key, interface in needed.items():
            instrument = self.equipment.get(key)
            if instrument is None:
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
