"""One line per container record for ``cellauto show`` (see :mod:`.wording`)."""

from __future__ import annotations

from cellauto.records.material_payloads import (
    ContainerCreated,
    CustodyMoved,
    LabelPrinted,
    LabelVerified,
    MaterialConsumed,
    MaterialsReserved,
    MaterialUseVoided,
    ShipmentRecorded,
    Transfer,
)
from cellauto.records.payload_base import Payload

__all__ = ["describe_container", "describe_material"]


def describe_container(p: Payload) -> str | None:
    """The line of a container, transfer, custody or label record; None for other kinds."""
    match p:
        case ContainerCreated():
            parents = f" from {', '.join(p.parent_keys)}" if p.parent_keys else ""
            return f"container {p.key} ({p.container_type}) created{parents}: {p.identity}"
        case Transfer():
            amount = [
                f"{value:g} {unit}"
                for value, unit in ((p.volume_ml, "mL"), (p.cells, "cells"))
                if value is not None
            ]
            what = f" ({', '.join(amount)})" if amount else ""
            return f"transfer {p.source} -> {p.destination}{what} by {p.by}"
        case CustodyMoved():
            was = "(unknown)" if p.from_place is None else str(p.from_place)
            via = f" via {p.via}" if p.via else ""
            scan = f", scanned {p.scanned!r}" if p.scanned else ""
            logger = ""
            if p.readings:
                peak = max(r.temperature_c for r in p.readings)
                excursions = f"{len(p.excursions)} excursion(s)" if p.excursions else "none"
                logger = f" (logger: {len(p.readings)} readings, max {peak:.1f} °C, {excursions})"
            why = f": {p.reason}" if p.reason else ""
            return f"custody {p.container}: {was} -> {p.to_place}{via} by {p.by}{scan}{logger}{why}"
        case LabelPrinted():
            return (
                f"label printed for {p.container} on {p.printer}: ZPL sha256 "
                f"{p.zpl_sha256[:12]}…, expires {p.text.expires:%Y-%m-%d %H:%M} UTC"
            )
        case LabelVerified():
            verdict = "matches the print" if p.matches else f"DOES NOT MATCH: {p.problem}"
            return f"label of {p.container} scanned: {verdict}"
    return describe_material(p)


_INDENT = " " * 10  # under the record's time, as signatures are


def _amount(milli: int, unit: str | None) -> str:
    return f"{milli / 1000:g} {unit or 'units'}"


def describe_material(p: Payload) -> str | None:
    """The line of a reservation, a use of a lot or a shipment; None for other kinds."""
    match p:
        case MaterialsReserved():
            lots = "".join(
                f"\n{_INDENT}{r.material}: lot {r.lot.lot_id} (expires {r.lot.expires_on}),"
                f" {r.basis}"
                for r in p.reservations
            )
            return f"materials reserved ({p.site} site):{lots or ' none'}"
        case MaterialConsumed():
            return (
                f"material {p.material}: lot {p.lot.lot_id} (supplier lot {p.lot.supplier_lot},"
                f" expires {p.lot.expires_on}) {_amount(p.quantity_milli, p.unit)} into"
                f" {p.into} [{p.use_key}; {p.how_chosen}; {p.amount_basis}]"
            )
        case MaterialUseVoided():
            return (
                f"use {p.use_key} of lot {p.lot_id} VOIDED ({p.quantity_milli / 1000:g} back):"
                f" {p.cause}"
            )
        case ShipmentRecorded():
            span = ""
            if p.min_c is not None and p.max_c is not None:
                span = f", logger {len(p.readings)} readings {p.min_c:.1f} to {p.max_c:.1f} °C"
            excursions = f", {len(p.excursions)} EXCURSION(S)" if p.excursions else ""
            return (
                f"shipment {p.shipment_id} {p.event}: {', '.join(p.containers)} in {p.shipper}"
                f" (logger {p.logger_serial}){span}{excursions}"
            )
    return None
