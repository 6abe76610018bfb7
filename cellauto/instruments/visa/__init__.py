"""VISA/SCPI adapters: instruments reached through pyvisa (pyvisa-py backend by default).

The command set is documented in ``docs/scpi.md``. Every adapter is created by an async
factory that opens the session and reads ``*IDN?``::

    counter = await VisaCellCounter.connect("TCPIP0::127.0.0.1::5025::SOCKET")
    count = await counter.count(sample)
    await counter.aclose()

No wait for an instrument blocks the event loop (:mod:`.session`: a short spin, then
the loop's selector; a worker thread per session for what can block); replies are
parsed strictly (:mod:`.scpi_reply`): a garbled or partial reply raises
:class:`ScpiReplyError`, never returns a wrong number.
"""

from cellauto.instruments.visa._adapter import VisaAdapter
from cellauto.instruments.visa.counter import VisaCellCounter
from cellauto.instruments.visa.errors import (
    ScpiInstrumentError,
    ScpiOutOfRangeError,
    ScpiReplyError,
    VisaConnectionError,
)
from cellauto.instruments.visa.freezer import VisaControlledRateFreezer
from cellauto.instruments.visa.registry import VISA_ADAPTERS, connect_visa
from cellauto.instruments.visa.session import VisaSession
from cellauto.instruments.visa.shipper import VisaDryShipper
from cellauto.instruments.visa.thawer import VisaThawer

__all__ = [
    "VISA_ADAPTERS",
    "ScpiInstrumentError",
    "ScpiOutOfRangeError",
    "ScpiReplyError",
    "VisaAdapter",
    "VisaCellCounter",
    "VisaConnectionError",
    "VisaControlledRateFreezer",
    "VisaDryShipper",
    "VisaSession",
    "VisaThawer",
    "connect_visa",
]
