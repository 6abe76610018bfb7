"""Simulated SCPI instruments on TCP: the cell counter, the controlled-rate freezer,
the dry shipper and the thawer.

The command set is documented in ``docs/scpi.md`` (the dry shipper's in
``docs/shipment.md``). A device handler drives a given
simulated instrument; :func:`serve_scpi` serves it on loopback for VISA clients
(``TCPIP0::127.0.0.1::<port>::SOCKET``, pyvisa-py backend)::

    async with serve_scpi(CounterScpi(SimCellCounter(world))) as server:
        counter = await VisaCellCounter.connect(server.resource_name)

``PYVISA_SIM_DEFINITIONS`` is a pyvisa-sim device file with identification-level
dialogues of both instruments (``pyvisa.ResourceManager(f"{path}@sim")``).
"""

from pathlib import Path

from cellauto.errors import EquipmentError
from cellauto.sim.base import SimInstrument
from cellauto.sim.counter import SimCellCounter
from cellauto.sim.dry_shipper import SimDryShipper
from cellauto.sim.freezer import SimControlledRateFreezer
from cellauto.sim.scpi.counter import CounterScpi
from cellauto.sim.scpi.device import ERROR_QUEUE_SIZE, ScpiDevice
from cellauto.sim.scpi.errors import ERROR_TEXT, ScpiError
from cellauto.sim.scpi.freezer import FreezerScpi
from cellauto.sim.scpi.program import Args, HeaderTable
from cellauto.sim.scpi.server import ScpiServer, serve_scpi
from cellauto.sim.scpi.shipper import ShipperScpi
from cellauto.sim.scpi.thawer import ThawerScpi
from cellauto.sim.thaw import SimThawer

#: pyvisa-sim definitions: a counter at port 5025 and a freezer at port 5026.
PYVISA_SIM_DEFINITIONS = Path(__file__).with_name("pyvisa_sim.yaml")


def scpi_device(instrument: SimInstrument) -> ScpiDevice:
    """The SCPI device handler driving ``instrument`` (to pass to :func:`serve_scpi`)."""
    if isinstance(instrument, SimCellCounter):
        return CounterScpi(instrument)
    if isinstance(instrument, SimControlledRateFreezer):
        return FreezerScpi(instrument)
    if isinstance(instrument, SimDryShipper):
        return ShipperScpi(instrument)
    if isinstance(instrument, SimThawer):
        return ThawerScpi(instrument)
    raise EquipmentError(
        f"{type(instrument).__name__} has no SCPI server; SCPI serves SimCellCounter, "
        "SimControlledRateFreezer, SimDryShipper and SimThawer"
    )


__all__ = [
    "ERROR_QUEUE_SIZE",
    "ERROR_TEXT",
    "PYVISA_SIM_DEFINITIONS",
    "Args",
    "CounterScpi",
    "FreezerScpi",
    "HeaderTable",
    "ScpiDevice",
    "ScpiError",
    "ScpiServer",
    "ShipperScpi",
    "ThawerScpi",
    "scpi_device",
    "serve_scpi",
]
