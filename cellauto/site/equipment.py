"""The equipment registry's acts: add an instrument, change its status, record a calibration.

Each act is one site transaction holding the record, its projection (the ``equipment``
row) and the actor's signature of it: ``performed`` for adding and calibrating,
``approved`` for a status change. Every act needs ``equipment.manage`` (supervisors).
A refused act (no permission, unknown asset, a duplicate, an instrument that may not go
in service) is journaled as an ``equipment_act_refused`` record in a transaction of its
own, then raised (the CLI exits 2). Dates that make no sense (a calibration due before
it was performed, in the future) are bad input: refused before anything is written.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Literal

from cellauto.errors import (
    BadInputError,
    EquipmentRefusedError,
    PermissionRefusedError,
)
from cellauto.records.refs import Meaning, RecordRef, SiteRef
from cellauto.records.site_payloads_mat import (
    CalibrationRecorded,
    EquipmentActRefused,
    EquipmentAdded,
    EquipmentStatus,
    EquipmentStatusChanged,
    Qualification,
)
from cellauto.records.site_store import SiteStore, SiteTx
from cellauto.site._acts import Refused, actor_problem, run_act
from cellauto.site._acts import today as site_today
from cellauto.site.auth import Authenticated
from cellauto.site.materials_read import EquipmentRow, read_equipment
from cellauto.site.roles import Permission
from cellauto.site.signatures import SignatureRefusal, sign

__all__ = ["add_equipment", "in_service_problem", "record_calibration", "set_status"]

Act = Literal["add", "status", "calibrate"]


class _Refused(Exception):
    """Inside the act's transaction: what to journal once it is rolled back."""

    def __init__(self, cause: str, error: BadInputError) -> None:
        super().__init__(str(error))
        self.cause = cause
        self.error = error


def _run(
    store: SiteStore,
    who: Authenticated,
    asset: str,
    act: Act,
    reason: str,
    body: Callable[[SiteTx], SiteRef],
) -> SiteRef:
    """``body(tx)`` in one transaction; a refusal journaled in its own, then raised (a
    refused signature with its own ``signature_refused`` record too)."""

    def refused(cause: str, error: BadInputError) -> EquipmentActRefused:
        return EquipmentActRefused(
            by=who.account.name,
            reason=reason,
            terminal=who.terminal,
            asset=asset,
            act=act,
            cause=cause,
            detail=str(error),
        )

    def guarded(tx: SiteTx) -> SiteRef:
        try:
            return body(tx)
        except _Refused as refusal:
            raise Refused(refused(refusal.cause, refusal.error), refusal.error) from None
        except SignatureRefusal as refusal:
            cause = f"signature: {refusal.record.cause}"
            raise Refused([refused(cause, refusal.error), refusal.record], refusal.error) from None

    return run_act(store, guarded)


def _may_act(tx: SiteTx, who: Authenticated, what: str) -> None:
    """The actor's account, confirmed under the lock, is active and holds equipment.manage."""
    problem = actor_problem(tx, who, Permission.EQUIPMENT_MANAGE, what)
    if problem is not None:
        raise _Refused(problem[0], PermissionRefusedError(problem[1]))


def _existing(tx: SiteTx, asset: str) -> EquipmentRow:
    row = read_equipment(tx.conn, asset=asset)
    if row is None:
        raise _Refused(
            "unknown_asset",
            BadInputError(
                f"no instrument {asset!r} in the registry; `cellauto equipment list` shows"
                " them, `cellauto equipment add` registers one"
            ),
        )
    if row.status == EquipmentStatus.RETIRED:
        raise _Refused(
            "retired", EquipmentRefusedError(f"{asset} is retired; a retired instrument stays so")
        )
    return row


def _signed(
    tx: SiteTx,
    who: Authenticated,
    payload: EquipmentAdded | EquipmentStatusChanged | CalibrationRecorded,
    meaning: Meaning,
    statement: str,
) -> SiteRef:
    """Append ``payload`` (projected) and ``who``'s signature of it; the record's ref."""
    ref = tx.append(payload)
    target = RecordRef(chain="site", seq=ref.seq, hash=ref.hash, kind=payload.kind.value)
    sign(tx, who, target, meaning, statement, permission=Permission.EQUIPMENT_MANAGE)
    return ref


def _not_future(qualification: Qualification, today: date) -> None:
    for name in ("iq", "oq", "pq"):
        day = getattr(qualification, name)
        if day is not None and day > today:
            raise BadInputError(f"--{name} {day} is in the future (today is {today})")


def in_service_problem(
    asset: str, qualification: Qualification, calibration_due: date | None, today: date
) -> str | None:
    """Why an instrument may not go in service today, or None."""
    missing = qualification.missing()
    if missing:
        return f"{asset} cannot go in service: {', '.join(missing)} not recorded"
    if calibration_due is not None and calibration_due < today:
        return (
            f"{asset} cannot go in service: calibration was due {calibration_due.isoformat()};"
            f" record one with `cellauto equipment calibrate {asset}`"
        )
    return None


def add_equipment(
    store: SiteStore,
    who: Authenticated,
    *,
    asset: str,
    interface: str,
    vendor: str,
    model: str,
    serial: str,
    qualification: Qualification | None = None,
    calibration_due: date | None = None,
    notes: str = "",
    reason: str = "",
) -> SiteRef:
    """Register an instrument (status ``qualifying``), signed ``performed``."""
    item = EquipmentAdded(
        by=who.account.name,
        reason=reason,
        terminal=who.terminal,
        asset=asset,
        interface=interface,
        vendor=vendor,
        model=model,
        serial=serial,
        qualification=qualification or Qualification(),
        calibration_due=calibration_due,
        notes=notes,
    )

    def body(tx: SiteTx) -> SiteRef:
        _may_act(tx, who, f"add {asset}")
        _not_future(item.qualification, site_today(tx))
        if read_equipment(tx.conn, asset=asset) is not None:
            raise _Refused(
                "duplicate_asset",
                BadInputError(f"asset {asset!r} is in the registry already; choose another tag"),
            )
        other = read_equipment(tx.conn, serial=(vendor, model, serial))
        if other is not None:
            raise _Refused(
                "duplicate_serial",
                BadInputError(
                    f"{vendor} {model} serial {serial!r} is registered already as {other.asset}"
                ),
            )
        return _signed(tx, who, item, Meaning.PERFORMED, f"added {asset} to the registry")

    return _run(store, who, asset, "add", reason, body)


def set_status(
    store: SiteStore,
    who: Authenticated,
    asset: str,
    status: EquipmentStatus | str,
    *,
    reason: str,
    qualification: Qualification | None = None,
    note: str = "",
) -> SiteRef:
    """Put an instrument in or out of service, or retire it; signed ``approved``.

    ``qualification``: IQ/OQ/PQ dates recorded with the change (the others kept)."""
    try:
        new = EquipmentStatus(status)
    except ValueError:
        raise BadInputError(
            f"status {status!r} is not in_service, out_of_service or retired"
        ) from None
    if new is EquipmentStatus.QUALIFYING:
        raise BadInputError("an instrument is qualifying only until it first goes in service")
    if not reason.strip():
        raise BadInputError("give a reason: it is part of the status change's record")

    def body(tx: SiteTx) -> SiteRef:
        _may_act(tx, who, f"change the status of {asset}")
        row = _existing(tx, asset)
        given = qualification or Qualification()
        merged = Qualification(
            iq=given.iq or row.iq_on, oq=given.oq or row.oq_on, pq=given.pq or row.pq_on
        )
        today = site_today(tx)
        _not_future(given, today)
        if new is EquipmentStatus.IN_SERVICE:
            problem = in_service_problem(asset, merged, row.calibration_due, today)
            if problem is not None:
                raise _Refused("not_qualified", EquipmentRefusedError(problem))
        change = EquipmentStatusChanged(
            by=who.account.name,
            reason=reason,
            terminal=who.terminal,
            asset=asset,
            status=new,
            qualification=qualification,
            maintenance_note=note,
        )
        return _signed(tx, who, change, Meaning.APPROVED, f"{asset} {new.value}: {reason}")

    return _run(store, who, asset, "status", reason, body)


def record_calibration(
    store: SiteStore,
    who: Authenticated,
    asset: str,
    *,
    performed_on: date,
    result: Literal["pass", "fail"],
    due: date,
    certificate: str = "",
    notes: str = "",
    reason: str = "",
) -> SiteRef:
    """Record a calibration, signed ``performed``: a pass sets the new due date, a fail
    takes the instrument out of service."""
    if result not in ("pass", "fail"):
        raise BadInputError(f"calibration result {result!r} is not pass or fail")
    if due < performed_on:
        raise BadInputError(f"--due {due} is before --performed {performed_on}")

    def body(tx: SiteTx) -> SiteRef:
        _may_act(tx, who, f"calibrate {asset}")
        _existing(tx, asset)
        if performed_on > site_today(tx):
            raise BadInputError(f"--performed {performed_on} is in the future")
        record = CalibrationRecorded(
            by=who.account.name,
            reason=reason,
            terminal=who.terminal,
            asset=asset,
            performed_on=performed_on,
            result=result,
            due=due,
            certificate=certificate,
            notes=notes,
        )
        statement = f"calibrated {asset} on {performed_on}: {result}"
        return _signed(tx, who, record, Meaning.PERFORMED, statement)

    return _run(store, who, asset, "calibrate", reason, body)
