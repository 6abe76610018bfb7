"""The simulated site's equipment registry: the line's instruments, in service and calibrated.

A plant registers each instrument (``cellauto equipment add``), qualifies it and puts it
in service before a run may use it. A simulated line's instruments get the same records
on the simulation's own site, as a supervisor would have made them: asset ``SIM-<name>``,
the vendor, model and serial the instrument reports at connect, IQ/OQ/PQ 30 days before
the run's start, calibration due a year after it. A test appends more records (out of
service, calibration due, another serial) through ``simulate(..., site_records=...)``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from cellauto.instruments.line import Line
from cellauto.protocols.definition import Protocol
from cellauto.protocols.params import Params
from cellauto.records.site_payload_base import SitePayload
from cellauto.records.site_payloads_mat import (
    EquipmentAdded,
    EquipmentStatus,
    EquipmentStatusChanged,
    Qualification,
)
from cellauto.sim.site import SIM_TERMINAL, SimSite

__all__ = ["SIM_SUPERVISOR", "seed_equipment", "sim_asset"]

SIM_SUPERVISOR = "sim:supervisor"
"""Who the simulated site's registry records are by (no account: records only)."""


def sim_asset(name: str) -> str:
    """The asset tag of the simulated line's instrument ``name``: ``SIM-bioreactor``."""
    return f"SIM-{name}"


def seed_equipment(
    site: SimSite, protocol: Protocol, params: Params, line: Line, start: datetime
) -> None:
    """Register every instrument of ``line`` on ``site``, qualified and in service."""
    day = start.date()
    done = day - timedelta(days=30)
    qualified = Qualification(iq=done, oq=done, pq=done)
    records: list[SitePayload] = []
    for name, instrument in line.equipment.items():
        ident = instrument.identity
        asset = line.assets.get(name, sim_asset(name))
        records.append(
            EquipmentAdded(
                by=SIM_SUPERVISOR,
                reason="simulated line",
                terminal=SIM_TERMINAL,
                asset=asset,
                interface=instrument.interface_name,
                vendor=ident.vendor,
                model=ident.model,
                serial=ident.serial,
                qualification=qualified,
                calibration_due=day + timedelta(days=365),
            )
        )
        records.append(
            EquipmentStatusChanged(
                by=SIM_SUPERVISOR,
                reason="qualified (simulated)",
                terminal=SIM_TERMINAL,
                asset=asset,
                status=EquipmentStatus.IN_SERVICE,
            )
        )
    if records:
        site.append(records)
