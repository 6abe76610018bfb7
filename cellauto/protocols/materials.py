"""Materials used at run time: each use checked, recorded and counted against its lot once.

A step draws a material of the bill of materials through ``run.materials``::

    await run.materials.add(bioreactor, "CD3/CD28 activator", kind="activation")
    await run.materials.use("CryoStor CS10", into="final product")

A use takes the lot reserved for the run's material and checks it again on the day of
use: released, unexpired, enough free. A lot that became unusable since the run started
(rejected, expired, drawn down by others) is a deviation (policy hold) and an alarm:
nothing is consumed, and after a Restart the use is checked again. A usable lot gets its
``material_consumed`` record and the decrement of its quantity in ONE commit
(:class:`~cellauto.records._lot_ops.ConsumeLot`). If the lot turned out rejected or
overdrawn in the commit itself (a QA act landing in the same instant), the use is voided
(``material_use_voided``, the quantity given back) and held, before anything is added.

A measured amount (vector from the cell count) is computed once and kept as a checkpoint.
After a controller crash a use already recorded is never consumed again. If its addition
is in doubt (recorded, not known to be done), the culture volume decides as for any
addition (:func:`~cellauto.protocols.reconcile.add_once`) and the resumed run records a
deviation (policy continue) naming the use in doubt, for QA's review: the lot counts the
use once, whatever happened.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import tzinfo
from typing import TYPE_CHECKING, Any, Literal

from cellauto.clock import time_paused
from cellauto.errors import ProtocolDefinitionError
from cellauto.identity.lot_barcode import LotBarcodeError, parse_lot_barcode
from cellauto.instruments.bioreactor import Bioreactor, Reagent
from cellauto.protocols import material_lots as lots
from cellauto.protocols.bom import Material, to_milli
from cellauto.protocols.bom_check import close_reservations
from cellauto.protocols.lot_scan import check_scan_option, read_lot_scan
from cellauto.protocols.material_lots import quantity
from cellauto.records._txops import ConnOp
from cellauto.records.material_payloads import (
    MaterialsReserved,
    Reservation,
)
from cellauto.records.spec import CheckPolicy
from cellauto.site.materials_read import LotRow, lot_state, read_lot
from cellauto.site.policy import site_zone

if TYPE_CHECKING:
    from cellauto.instruments.barcode_scanner import BarcodeScanner
    from cellauto.protocols.context import Run
    from cellauto.protocols.execution import Execution

__all__ = ["MaterialUse", "RunMaterials", "end_materials", "materials_reserved"]


@dataclass(frozen=True)
class MaterialUse:
    """One use of a lot, as recorded."""

    use_key: str
    material: str
    lot_id: str
    supplier_lot: str
    quantity: float
    unit: str
    recovered: bool = False
    """True: recorded before a controller crash (not consumed again now)."""


def _reserved(execution: Execution) -> list[Reservation]:
    if execution.bom is not None:
        return execution.bom.reservations
    plan = execution.resume_plan
    if plan is not None and plan.reserved is not None:
        return plan.reserved.reservations
    return []


def materials_reserved(execution: Execution) -> MaterialsReserved | None:
    """The record of the lots reserved for a new run, journaled in ONE commit with its
    ``run_started`` (a controller killed between the two would leave a run whose journal
    names no lot: every use of it held, whatever the answer)."""
    if execution.bom is None or execution.site is None:
        return None
    return MaterialsReserved(reservations=execution.bom.reservations, site=execution.site.kind)


async def end_materials(execution: Execution) -> None:
    """Close the run's reservations: what it did not use is free again."""
    site = execution.site
    if site is None or not _reserved(execution):
        return
    run_id = execution.run_id
    if site.kind == "simulated":
        writing = getattr(site, "writing", None)
        if writing is not None:
            with writing() as conn:
                close_reservations(conn, run_id)
        return
    op = ConnOp(lambda conn: close_reservations(conn, run_id), run_id=run_id, what="reservations")
    with time_paused():
        await execution.journal_run_ops([op])


class RunMaterials:
    """``run.materials``: use a material of the protocol's bill of materials."""

    def __init__(self, run: Run[Any], execution: Execution) -> None:
        self._run = run
        self._execution = execution
        self._uses: dict[str, MaterialUse] = {}
        self._site_zone: tzinfo | None = None

    def _material(self, name: str) -> Material:
        declared = {m.name: m for m in self._execution.protocol.materials}
        if name not in declared:
            raise ProtocolDefinitionError(
                f"step {self._run.step!r}: material {name!r} is not in the protocol's bill of "
                "materials; declare it in Protocol(materials=[Material(...)]). Declared: "
                + (", ".join(repr(n) for n in declared) or "none")
            )
        return declared[name]

    def _recorded(self, key: str) -> MaterialUse | None:
        if key in self._uses:
            return self._uses[key]
        plan = self._execution.resume_plan
        body = plan.material_uses.get(key) if plan is not None else None
        if body is None:
            return None
        unit = self._material(body.material).amount.unit.value
        return MaterialUse(
            key, body.material, body.lot.lot_id, body.lot.supplier_lot,
            body.quantity_milli / 1000, unit, recovered=True,
        )  # fmt: skip

    def _problem(self, lot: LotRow | None, lot_id: str, material: str, need: int) -> str | None:
        """Why the lot cannot be used now (None: it can)."""
        if lot is None:
            return f"lot {lot_id!r} ({material}): no such lot on the site: not used"
        today = self._run.now().astimezone(self._zone()).date()  # the site's day
        state = lot_state(lot, today)
        unit = self._material(material).amount.unit.value
        if state == "expired":
            return (
                f"lot {lot_id!r} ({material}) expired {lot.expires_on.isoformat()} "
                f"(use on {today.isoformat()}): not used"
            )
        if state in ("rejected", "quarantine"):
            return f"lot {lot_id!r} ({material}) is {state} on the site: not used"
        mine = lots.outstanding(self._execution, lot_id)
        free = lot.remaining_milli - max(0, lot.reserved_milli - mine)
        if free < need:
            return (
                f"lot {lot_id!r} ({material}) needs {quantity(need, unit)}, "
                f"{quantity(max(0, free), unit)} free: not used"
            )
        return None

    def _zone(self) -> tzinfo:
        """The site's time zone (read once: a policy change mid-run applies from the next)."""
        if self._site_zone is None:
            site = self._execution.site
            assert site is not None
            with site.reading() as conn:
                self._site_zone = site_zone(conn)
        return self._site_zone

    def _hold(self, check: str, problem: str) -> None:
        execution = self._execution
        execution.deviation(execution.current_step_name, check, problem, CheckPolicy.HOLD)
        self._run.alarm(problem, severity="critical")

    def _amount(self, material: Material, key: str, lot: LotRow, values: Mapping[str, Any]) -> int:
        """The use's amount in milli-units; a measured one computed once (checkpointed)."""
        if material.amount.measured is None:
            return to_milli(material.amount.actual(self._run.params, lot, values))
        name = f"{key}: amount"
        kept = self._run.checkpoint_or(name, None)
        if kept is None:
            try:
                kept = to_milli(material.amount.actual(self._run.params, lot, values))
            except KeyError as exc:
                raise ProtocolDefinitionError(
                    f"material {material.name!r}: its measured amount needs value {exc} in "
                    "values= of run.materials.use/add"
                ) from None
            self._run.set_checkpoint(name, kept)
        return int(kept)

    async def use(
        self,
        material: str,
        *,
        key: str | None = None,
        into: str,
        values: Mapping[str, Any] | None = None,
        scan: Literal["operator"] | BarcodeScanner | None = None,
    ) -> MaterialUse:
        """Use ``material`` from the run's reserved lot (once per ``key``, default the
        material's name); a lot unusable now holds the run until a Restart.

        ``scan``: ``"operator"`` (a person scans the vial's lot barcode in the task
        ``scan <material> lot``) or a barcode scanner: the lot scanned is used, the
        reserved one or another usable lot of the material (reserved then); an unknown,
        foreign or unusable lot holds, and the scan is asked again after the Restart."""
        declared = self._material(material)
        check_scan_option(f"step {self._run.step!r}: material {material!r}", scan)
        key = key or material
        recorded = self._recorded(key)
        if recorded is not None:
            return recorded
        reservation = next((r for r in _reserved(self._execution) if r.material == material), None)
        check = f"material: {material}"
        attempt = 0
        while True:
            attempt += 1
            chosen = (scan, attempt) if scan is not None else None
            problem, used = await self._try_use(
                declared, key, into, values or {}, reservation, chosen
            )
            if used is not None:
                self._uses[key] = used
                return used
            assert problem is not None
            self._hold(check, problem)
            await self._run.hold_point()

    async def _try_use(
        self,
        material: Material,
        key: str,
        into: str,
        values: Mapping[str, Any],
        reservation: Reservation | None,
        chosen: tuple[Literal["operator"] | BarcodeScanner, int] | None = None,
    ) -> tuple[str | None, MaterialUse | None]:
        execution = self._execution
        site = execution.site
        if site is None:
            return (
                f"material {material.name!r}: no lot reserved for this run "
                "(it was started without a site to check its materials against): not used"
            ), None
        if reservation is None:
            return (
                f"material {material.name!r}: no lot reserved for this run (its journal has "
                "no materials_reserved record naming one): not used; a restart cannot "
                "change that: stop the run and start a new one"
            ), None
        lot_id = reservation.lot.lot_id
        scanned: str | None = None
        if chosen is not None:
            scan, attempt = chosen
            scanned = await read_lot_scan(
                self._run, material.name, use_key=key, attempt=attempt, scan=scan,
                reserved_lot_id=lot_id,
            )  # fmt: skip
            try:
                lot_id = parse_lot_barcode(scanned)
            except LotBarcodeError as exc:
                return f"material {material.name!r}: {exc}: not used", None
        with site.reading() as conn:
            lot = read_lot(conn, lot_id)
        if lot is None:
            return self._problem(None, lot_id, material.name, 0), None
        if lot.material != material.name:
            return (
                f"lot {lot_id!r} scanned is a lot of {lot.material!r}, not of "
                f"{material.name!r}: not used"
            ), None
        need = self._amount(material, key, lot, values)
        problem = self._problem(lot, lot_id, material.name, need)
        if problem is not None:
            return problem, None
        if lot_id != reservation.lot.lot_id:
            on = self._run.now().astimezone(self._zone()).date().isoformat()
            problem = await lots.reserve_extra(self._execution, material, lot, need, on)
            if problem is not None:
                return problem, None
        after = await lots.consume(self._execution, material, key, into, lot, need, scanned)
        if after.status != "released" or (after.remaining_milli or 0) < 0:
            await lots.void_use(self._execution, key, lot_id, need, after)
            why = "rejected" if after.status == "rejected" else f"status {after.status}"
            if after.status == "released":
                left = quantity(after.remaining_milli or 0, material.amount.unit.value)
                why = f"overdrawn ({left} left)"
            return (
                f"lot {lot_id!r} ({material.name}) was {why} as it was used: the use is voided, "
                "nothing was added"
            ), None
        unit = material.amount.unit.value
        return None, MaterialUse(key, material.name, lot_id, lot.supplier_lot, need / 1000, unit)

    async def add(
        self,
        bioreactor: Bioreactor,
        material: str,
        *,
        kind: Literal["activation", "vector", "cytokine"],
        key: str | None = None,
        into: str = "culture bag",
        values: Mapping[str, Any] | None = None,
        scan: Literal["operator"] | BarcodeScanner | None = None,
        **reagent: Any,
    ) -> MaterialUse:
        """:meth:`use` the material, then add it to the culture once (whatever crashes),
        as a reagent carrying the lot's supplier lot and the use's volume."""
        from cellauto.protocols.reconcile import add_once  # it builds on the run context

        declared = self._material(material)
        if declared.amount.unit.value != "mL":
            raise ProtocolDefinitionError(
                f"material {material!r}: run.materials.add() adds a volume, but the protocol "
                f"counts it in {declared.amount.unit.value}; use run.materials.use()"
            )
        used = await self.use(material, key=key, into=into, values=values, scan=scan)
        done_key = f"{used.use_key}: done"
        if used.recovered and not self._run.checkpoint_or(done_key, False):
            self._execution.deviation(
                self._execution.current_step_name,
                f"material in doubt: {used.use_key}",
                f"use {used.use_key!r} of lot {used.lot_id!r} ({used.quantity:g} {used.unit}) "
                "was recorded before the controller stopped, its addition not: counted as "
                "consumed once; the culture volume decides whether it is added now",
                CheckPolicy.CONTINUE,
            )
        added = Reagent(
            name=material,
            kind=kind,
            volume_ml=used.quantity,
            lot=used.supplier_lot,
            **reagent,
        )
        await add_once(self._run, bioreactor, added, key=used.use_key)
        return used
