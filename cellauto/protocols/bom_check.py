"""The bill of materials checked against the site before a run starts, and reserved.

:func:`plan_materials` reads the site (nothing is written) and picks, for every material
the protocol declares, the lot the run will draw from: the lot assigned to it (``cellauto
run --lot MATERIAL=LOT``) or the first to expire among the usable ones (FEFO). A lot is
usable when it is released, unexpired through the run's planned end and has the planned
amount free (remaining less what open runs reserved). Anything else refuses the run with
:class:`~cellauto.errors.MaterialRefusedError` naming the material, the lot and why.

The resulting :class:`BomPlan` reserves its lots with :meth:`BomPlan.reserve`, inside the
transaction that claims the run: a conditional ``UPDATE`` per lot, so two runs starting
together cannot both count on the same quantity; one that finds the lot taken meanwhile
refuses the claim as a whole (nothing written). :func:`close_reservations` gives back
what a run reserved and did not use, when it ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from cellauto.errors import MaterialRefusedError
from cellauto.protocols.bom import Material, to_milli
from cellauto.protocols.definition import Protocol
from cellauto.protocols.params import Params
from cellauto.records._owners import orphaned, stale_interval_s
from cellauto.records.backend import Conn, Location
from cellauto.records.material_payloads import Reservation
from cellauto.site.materials_read import (
    LotRow,
    list_lots,
    lot_state,
    read_lot,
    read_material,
    snapshot,
)
from cellauto.site.policy import site_zone
from cellauto.site.view import SiteView

__all__ = ["BomPlan", "check_bom", "close_reservations", "plan_materials", "reserver"]


@dataclass(frozen=True)
class BomPlan:
    """The lots a run reserves, one per material, and the end they must last to."""

    reservations: list[Reservation]
    planned_end: datetime
    through: date | None = None
    """The last day the lots must last, in the site's time zone."""

    def reserve(self, conn: Conn, run_id: str) -> None:
        """Reserve every lot in ``conn``'s open write transaction; MaterialRefusedError
        (the caller rolls the transaction back) if one is no longer usable."""
        through = (self.through or self.planned_end.date()).isoformat()
        for reservation in self.reservations:
            lot, quantity = reservation.lot.lot_id, reservation.quantity_milli
            changed = conn.execute(
                "UPDATE lots SET reserved_milli = reserved_milli + ?"
                " WHERE lot_id = ? AND status = 'released' AND expires_on >= ?"
                " AND remaining_milli - reserved_milli >= ?",
                (quantity, lot, through, quantity),
            ).rowcount
            if changed != 1:
                raise MaterialRefusedError(
                    f"material {reservation.material!r}: lot {lot!r} could not be reserved "
                    f"({_quantity(quantity)} through {through}): another run reserved it, or "
                    "it was rejected, since the check; start the run again to pick another lot"
                )
            conn.execute(
                "INSERT INTO lot_reservations (run_id, lot_id, reserved_milli, used_milli, open)"
                " VALUES (?, ?, ?, 0, 1) ON CONFLICT (run_id, lot_id) DO UPDATE SET"
                " reserved_milli = lot_reservations.reserved_milli + excluded.reserved_milli",
                (run_id, lot, quantity),
            )


def close_reservations(conn: Conn, run_id: str) -> None:
    """Close the run's open reservations: what it did not use is free again."""
    rows = conn.execute(
        "SELECT lot_id, reserved_milli, used_milli FROM lot_reservations"
        " WHERE run_id = ? AND open = 1",
        (run_id,),
    ).fetchall()
    for lot_id, reserved, used in rows:
        conn.execute(
            "UPDATE lots SET reserved_milli = MAX(0, reserved_milli - ?) WHERE lot_id = ?",
            (max(0, reserved - used), lot_id),
        )
    conn.execute("UPDATE lot_reservations SET open = 0 WHERE run_id = ?", (run_id,))


def _quantity(milli: int, unit: str = "") -> str:
    return f"{milli / 1000:g}" + (f" {unit}" if unit else "")


def _why_unusable(lot: LotRow, unit: str, need: int, *, on: date, through: date) -> str | None:
    """Why ``lot`` cannot serve the run (None: it can)."""
    state = lot_state(lot, on)
    if state == "expired" or (state == "released" and lot.expires_on < through):
        return (
            f"expired {lot.expires_on.isoformat()}"
            if state == "expired"
            else (f"expires {lot.expires_on.isoformat()}, before the run's planned end {through}")
        )
    if state != "released":
        return state
    if lot.free_milli < need:
        reserved = (
            f" (reserved {_quantity(lot.reserved_milli)} by other runs)"
            if lot.reserved_milli
            else ""
        )
        return f"{_quantity(max(0, lot.free_milli), unit)} free{reserved}"
    return None


def _less_orphans(conn: Conn, lot: LotRow, gone: Callable[[str], bool] | None) -> LotRow:
    """The lot with what orphaned reservations hold counted free again."""
    if gone is None or not lot.reserved_milli:
        return lot
    rows = conn.execute(
        "SELECT run_id, reserved_milli - used_milli FROM lot_reservations"
        " WHERE lot_id = ? AND open = 1 AND NOT EXISTS"
        " (SELECT 1 FROM records WHERE records.run_id = lot_reservations.run_id)",
        (lot.lot_id,),
    ).fetchall()
    orphaned = sum(max(0, held) for run_id, held in rows if gone(run_id))
    return lot._replace(reserved_milli=max(0, lot.reserved_milli - orphaned)) if orphaned else lot


def _reservation(
    material: Material, params: Params, lot: LotRow, need: int, unit: str
) -> Reservation:
    return Reservation(
        material=material.name,
        lot=snapshot(lot),
        quantity_milli=need,
        basis=material.amount.describe(need / 1000),
    )


def _need(material: Material, params: Params, lot: LotRow) -> int:
    need = to_milli(material.amount.planned(params, lot))
    if need <= 0:
        raise MaterialRefusedError(
            f"material {material.name!r}: the protocol's amount for these parameters is "
            f"{need / 1000:g}; it must be > 0"
        )
    return need


def _plan_one(
    conn: Conn,
    material: Material,
    params: Params,
    assigned: str | None,
    *,
    on: date,
    through: date,
    gone: Callable[[str], bool] | None,
) -> Reservation:
    name = material.name
    defined = read_material(conn, name)
    if defined is None:
        raise MaterialRefusedError(
            f"material {name!r}: not defined on this site (cellauto materials define)"
        )
    unit = material.amount.unit.value
    if defined.unit != unit:
        raise MaterialRefusedError(
            f"material {name!r}: the protocol counts {unit}, the site defines {defined.unit}"
        )
    if assigned is not None:
        found = read_lot(conn, assigned)
        if found is None:
            raise MaterialRefusedError(f"lot {assigned!r}: no such lot on this site")
        lot = _less_orphans(conn, found, gone)
        if lot.material != name:
            raise MaterialRefusedError(
                f"lot {assigned!r} is a lot of {lot.material!r}, not of {name!r}; assign a "
                f"lot of {name!r}"
            )
        need = _need(material, params, lot)
        why = _why_unusable(lot, unit, need, on=on, through=through)
        if why is not None:
            raise MaterialRefusedError(
                f"lot {assigned!r} ({name}): {why}; it cannot serve this run (needs "
                f"{_quantity(need, unit)} through {through}); assign another lot"
            )
        return _reservation(material, params, lot, need, unit)
    lots = [_less_orphans(conn, row, gone) for row in list_lots(conn, name)]
    reasons: list[str] = []
    needs: list[int] = []
    for row in lots:
        need = _need(material, params, row)
        needs.append(need)
        if _why_unusable(row, unit, need, on=on, through=through) is None:
            confirmed = read_lot(conn, row.lot_id)  # against its site record
            assert confirmed is not None
            lot = _less_orphans(conn, confirmed, gone)
            if _why_unusable(lot, unit, need, on=on, through=through) is None:
                return _reservation(material, params, lot, need, unit)
        reasons.append(f"lot {row.lot_id} {_why_unusable(row, unit, need, on=on, through=through)}")
    needed = f" with {_quantity(max(needs), unit)} free" if needs else ""
    detail = "; ".join(reasons) if reasons else "no lot received (cellauto materials receive)"
    raise MaterialRefusedError(
        f"material {name!r}: no released lot unexpired through {through}{needed}; {detail}"
    )


def plan_materials(
    protocol: Protocol[Any],
    params: Params,
    conn: Conn,
    *,
    start: datetime,
    planned_end: datetime,
    assigned: Mapping[str, str] | None = None,
    gone: Callable[[str], bool] | None = None,
) -> BomPlan:
    """Pick and check a lot for every material (reads only); MaterialRefusedError if one
    has none. ``assigned``: material name -> lot id chosen by a person. ``gone(run_id)``:
    whether a run's controller is gone; what runs that never started (no records) and
    whose controller is gone reserved counts as free (the claim releases it)."""
    protocol_materials = protocol.materials
    assigned = dict(assigned or {})
    names = [material.name for material in protocol_materials]
    for name in assigned:
        if name not in names:
            raise MaterialRefusedError(
                f"--lot {name}=...: this protocol declares no material {name!r}; it declares "
                + (", ".join(repr(n) for n in names) or "none")
            )
    zone = site_zone(conn)  # a lot expires at the end of its day where the site is
    on, through = start.astimezone(zone).date(), planned_end.astimezone(zone).date()
    reservations = [
        _plan_one(
            conn, material, params, assigned.get(material.name), on=on, through=through, gone=gone
        )
        for material in protocol_materials
    ]
    return BomPlan(reservations=reservations, planned_end=planned_end, through=through)


def check_bom(
    protocol: Protocol[Any],
    params: Params,
    site: SiteView | None,
    *,
    start: datetime,
    assigned: Mapping[str, str] | None = None,
) -> BomPlan | None:
    """The run's bill of materials planned against ``site`` (Runner.prepare: nothing is
    written yet); None for a protocol that declares no materials."""
    if not protocol.materials:
        if assigned:
            raise MaterialRefusedError(
                f"protocol {protocol.name!r} declares no materials; --lot assigns none"
            )
        return None
    if site is None:
        count = len(protocol.materials)
        raise MaterialRefusedError(
            f"protocol {protocol.name!r} declares {count} material{'s' * (count != 1)}; no site "
            "to check them against: run it on a line with a site (a journal file whose site "
            "defines them, or a simulated line)"
        )
    planned_end = start + timedelta(hours=sum(protocol.estimate_h(params)))
    path = getattr(site, "path", None) if site.kind == "file" else None
    with site.reading() as conn:
        gone = None
        if path is not None:
            # the owner key as the journal's claims write it (a file's resolved path, or the
            # URL of a PostgreSQL journal)
            key = str(Location.parse(path).resolve())
            now_ns, stale_s = time.time_ns(), stale_interval_s()
            gone = lambda run_id: orphaned(conn, run_id, key, now_ns, stale_s)  # noqa: E731
        return plan_materials(
            protocol,
            params,
            conn,
            start=start,
            planned_end=planned_end,
            assigned=assigned,
            gone=gone,
        )


def reserver(
    plan: BomPlan | None, site: SiteView | None, run_id: str
) -> Callable[[Conn], None] | None:
    """What the claim transaction runs to reserve the plan's lots on a journal file's site.

    A simulation's own site is reserved here at once, on its own tables (None returned).
    """
    if plan is None or site is None:
        return None
    if site.kind == "file":
        return lambda conn: plan.reserve(conn, run_id)
    writing = getattr(site, "writing", None)
    if writing is None:
        raise TypeError(f"{site!r}: a simulated site must take writes (SimSite.writing)")
    with writing() as conn:
        plan.reserve(conn, run_id)
    return None
