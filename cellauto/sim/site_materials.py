"""A simulated site's materials: one released lot of each material a protocol declares.

:func:`seed_materials` (one of :data:`~cellauto.sim.site_for_run.SEEDERS`) defines each
material of the bill of materials and receives and releases one lot of it, as a plant's
stores and QA would before a run: ``SIM-<material slug>-<n>`` from supplier
``simulated``, expiring 180 days after the start, three times what the run plans to use,
with the attributes such a material carries (a vector's titre). The lot numbers come from
a generator seeded with the protocol's and the material's names, so the same protocol
gets the same lots whenever it is simulated (a resumed simulation finds its lots again).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import date, datetime, timedelta

import numpy as np

from cellauto.instruments.line import Line
from cellauto.protocols.bom import Material, to_milli
from cellauto.protocols.definition import Protocol
from cellauto.protocols.params import Params
from cellauto.records import Record
from cellauto.records._lot_ops import decrement
from cellauto.records.material_payloads import (
    MaterialConsumed,
    MaterialsReserved,
    MaterialUseVoided,
)
from cellauto.records.site_payloads_mat import (
    LotReceived,
    LotReleased,
    MaterialDefined,
    MaterialKindName,
    Storage,
)
from cellauto.sim.site import SIM_TERMINAL, SimSite
from cellauto.site.materials_read import LotRow

__all__ = ["LOT_ATTRIBUTES", "replay_run", "seed_materials", "sim_lot_id"]

SHELF_LIFE = timedelta(days=180)
SUPPLIER = "simulated"
WHO = "sim:qa"

# (word in the material's name, kind, storage, the attributes its lots carry)
_KINDS: tuple[tuple[str, MaterialKindName, Storage, dict[str, float | str]], ...] = (
    ("bag", MaterialKindName.CONSUMABLE, Storage.AMBIENT, {}),
    ("vector", MaterialKindName.VECTOR, Storage.ULT, {"titer_tu_per_ml": 1.0e8}),
    ("cryo", MaterialKindName.CRYOPROTECTANT, Storage.FRIDGE, {"dmso_pct": 10.0}),
    ("cs10", MaterialKindName.CRYOPROTECTANT, Storage.FRIDGE, {"dmso_pct": 10.0}),
    ("medium", MaterialKindName.MEDIUM, Storage.FRIDGE, {}),
    ("il-", MaterialKindName.CYTOKINE, Storage.FREEZER, {"activity_iu_per_ml": 1.0e6}),
    ("cytokine", MaterialKindName.CYTOKINE, Storage.FREEZER, {"activity_iu_per_ml": 1.0e6}),
    ("activator", MaterialKindName.REAGENT, Storage.FRIDGE, {}),
    ("tubing", MaterialKindName.CONSUMABLE, Storage.AMBIENT, {}),
    ("set", MaterialKindName.CONSUMABLE, Storage.AMBIENT, {}),
)
LOT_ATTRIBUTES = {word: attributes for word, _, _, attributes in _KINDS}
"""The attributes a simulated lot carries, by the word in its material's name."""


def _kind(material: str) -> tuple[MaterialKindName, Storage, dict[str, float | str]]:
    name = material.lower()
    for word, kind, storage, attributes in _KINDS:
        if word in name:
            return kind, storage, dict(attributes)
    return MaterialKindName.REAGENT, Storage.FRIDGE, {}


def _slug(material: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", material.lower()).strip("-")[:40] or "material"


def sim_lot_id(protocol: str, material: str) -> str:
    """The simulated lot of ``material`` for ``protocol`` (a pure function of the names)."""
    digest = hashlib.sha256(f"{protocol}\0{material}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "big"))
    return f"SIM-{_slug(material)}-{int(rng.integers(1000, 10000))}"


def _planned_milli(material: Material, params: Params, lot: LotRow) -> int:
    return max(1, to_milli(material.amount.planned(params, lot)))


def seed_materials(
    site: SimSite, protocol: Protocol, params: Params, line: Line, start: datetime
) -> None:
    """Define each material of ``protocol``'s bill of materials and release a lot of it."""
    if not protocol.materials:
        return
    received_on: date = start.date()
    payloads: list[MaterialDefined | LotReceived | LotReleased] = []
    for material in protocol.materials:
        kind, storage, attributes = _kind(material.name)
        lot_id = sim_lot_id(protocol.name, material.name)
        expires_on = (start + SHELF_LIFE).date()
        draft = LotRow(
            lot_id, material.name, SUPPLIER, lot_id, received_on, expires_on,
            "released", "sim:stores", 0, 0, 0, attributes, 0, "",
        )  # fmt: skip
        quantity = 3 * _planned_milli(material, params, draft)
        payloads += [
            MaterialDefined(
                by=WHO,
                reason="simulated site",
                terminal=SIM_TERMINAL,
                material=material.name,
                material_kind=kind,
                unit=material.amount.unit,
                storage=storage,
                attributes=sorted(attributes),
            ),
            LotReceived(
                by=WHO,
                reason="simulated site",
                terminal=SIM_TERMINAL,
                lot_id=lot_id,
                material=material.name,
                supplier=SUPPLIER,
                supplier_lot=lot_id.removeprefix("SIM-"),
                received_on=received_on,
                expires_on=expires_on,
                quantity_milli=quantity,
                attributes=attributes,
            ),
            LotReleased(by=WHO, reason="simulated site", terminal=SIM_TERMINAL, lot_id=lot_id),
        ]
    site.append(payloads)


def replay_run(site: SimSite, run_id: str, records: Sequence[Record]) -> None:
    """Put a resumed run's reservation and uses back on a simulated site seeded afresh,
    so that it sees the same quantities as before its controller stopped."""
    uses: dict[str, MaterialConsumed] = {}
    with site.writing() as conn:
        for record in records:
            body = record.payload
            if isinstance(body, MaterialsReserved):
                for reservation in body.reservations:
                    quantity, lot_id = reservation.quantity_milli, reservation.lot.lot_id
                    conn.execute(
                        "UPDATE lots SET reserved_milli = reserved_milli + ? WHERE lot_id = ?",
                        (quantity, lot_id),
                    )
                    conn.execute(
                        "INSERT INTO lot_reservations (run_id, lot_id, reserved_milli,"
                        " used_milli, open) VALUES (?, ?, ?, 0, 1)",
                        (run_id, lot_id, quantity),
                    )
            elif isinstance(body, MaterialConsumed):
                uses[body.use_key] = body
            elif isinstance(body, MaterialUseVoided):
                uses.pop(body.use_key, None)
        for use in uses.values():
            decrement(conn, run_id, use.lot.lot_id, use.quantity_milli)
