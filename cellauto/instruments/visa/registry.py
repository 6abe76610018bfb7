"""Which VISA adapter serves which instrument interface (for line configuration)."""

from __future__ import annotations

from typing import Any

from cellauto.errors import EquipmentError
from cellauto.instruments.base import Instrument
from cellauto.instruments.cell_counter import CellCounter
from cellauto.instruments.controlled_rate_freezer import ControlledRateFreezer
from cellauto.instruments.dry_shipper import DryShipper
from cellauto.instruments.thawer import Thawer
from cellauto.instruments.visa._adapter import VisaAdapter
from cellauto.instruments.visa.counter import VisaCellCounter
from cellauto.instruments.visa.freezer import VisaControlledRateFreezer
from cellauto.instruments.visa.shipper import VisaDryShipper
from cellauto.instruments.visa.thawer import VisaThawer

__all__ = ["VISA_ADAPTERS", "connect_visa"]

#: Interface -> its VISA/SCPI adapter (docs/scpi.md).
VISA_ADAPTERS: dict[type[Instrument], type[VisaAdapter]] = {
    CellCounter: VisaCellCounter,
    ControlledRateFreezer: VisaControlledRateFreezer,
    DryShipper: VisaDryShipper,
    Thawer: VisaThawer,
}


async def connect_visa(
    interface: type[Instrument], resource_name: str, **options: Any
) -> VisaAdapter:
    """Connect the adapter for ``interface`` (``timeout_s``, ``retries``... in ``options``)."""
    for known, adapter in VISA_ADAPTERS.items():
        if issubclass(interface, known):
            return await adapter.connect(resource_name, **options)
    supported = ", ".join(sorted(i.__name__ for i in VISA_ADAPTERS))
    raise EquipmentError(
        f"no VISA adapter for {interface.__name__} at {resource_name!r}; "
        f"VISA adapters exist for: {supported}"
    )
