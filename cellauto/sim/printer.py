"""The simulated line's label printer: prints ZPL onto the world's containers.

What it prints is rendered (zint) and kept in the world, where the line's scanner and
the simulated operators read it back (zxing): a print fault shows as it would on a line.
Faults: :class:`~cellauto.sim.faults.MisprintLabel` (a symbol carries other data) and
:class:`~cellauto.sim.faults.SmudgedLabel` (a symbol rubbed off), each for the next
``count`` labels from ``at_h``.
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio

from cellauto.errors import InstrumentError
from cellauto.identity.zpl import PrintedLabel, ZplError, parse_zpl
from cellauto.instruments.label_printer import LabelPrinter, PrintJob
from cellauto.sim.base import SimInstrument, sim_identity
from cellauto.sim.faults import Fault, MisprintLabel, SmudgedLabel
from cellauto.sim.world import SimWorld

__all__ = ["SimZplPrinter"]

_SYMBOL_ORDER = {"din": 0, "product": 1, "identity": 2}
"""Where each symbol is in the ZPL of :func:`cellauto.identity.label.to_zpl`."""


@dataclass
class _Armed:
    fault: MisprintLabel | SmudgedLabel
    from_h: float
    remaining: int


class SimZplPrinter(SimInstrument, LabelPrinter):
    """A thermal-transfer label printer on the simulated line."""

    MARKED_FAULTS = (MisprintLabel, SmudgedLabel)

    def __init__(self, world: SimWorld, serial: str = "LP-0001") -> None:
        super().__init__(world, sim_identity("SimZebra ZT411", serial))
        self._faults: list[_Armed] = []

    def inject_process_fault(self, fault: Fault) -> None:
        if not isinstance(fault, MisprintLabel | SmudgedLabel):
            super().inject_process_fault(fault)
            return
        start = self.world.elapsed_h() if fault.at_h is None else fault.at_h
        self._faults.append(_Armed(fault, start, fault.count))

    def _armed(self) -> MisprintLabel | SmudgedLabel | None:
        now = self.world.elapsed_h()
        for armed in self._faults:
            if armed.from_h <= now and armed.remaining > 0:
                armed.remaining -= 1
                fault, done = armed.fault, fault_count(armed)
                what = "misprinted" if isinstance(fault, MisprintLabel) else "smudged"
                effect = f"{what} {fault.symbol} label ({done} of {fault.count})"
                self.mark_fired(fault, now, effect)
                return armed.fault
        return None

    async def print_label(self, zpl: str, container: str) -> PrintJob:
        self.guard("print_label", command=True)
        await anyio.sleep(3.0)
        try:
            printed = parse_zpl(zpl)
        except ZplError as exc:
            raise InstrumentError(f"{self.where}: label refused: {exc}") from None
        fault = self._armed()
        if isinstance(fault, MisprintLabel):
            printed = _misprinted(printed, fault)
        job = self.world.labels.print_label(zpl, container=container, printed=printed)
        if isinstance(fault, SmudgedLabel):
            index = _SYMBOL_ORDER[fault.symbol]
            if index < len(printed.symbols):
                symbol = printed.symbols[index]
                band = 60 if symbol.symbology == "code128" else 40
                box = (symbol.x, symbol.y, symbol.x + 4 * band, symbol.y + band + symbol.height)
                self.world.labels.smudge(container, box)
        return job


def fault_count(armed: _Armed) -> int:
    """How many labels ``armed`` has acted on so far."""
    return armed.fault.count - armed.remaining


def _misprinted(printed: PrintedLabel, fault: MisprintLabel) -> PrintedLabel:
    index = _SYMBOL_ORDER[fault.symbol]
    symbols = list(printed.symbols)
    if index < len(symbols):
        symbols[index] = symbols[index].model_copy(update={"data": fault.data})
    return printed.model_copy(update={"symbols": tuple(symbols)})
