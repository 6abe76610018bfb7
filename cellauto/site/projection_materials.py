"""The projections of materials, lots and equipment: site records turned into rows.

:func:`apply_material_projection` is called by :func:`cellauto.site.projection.apply_projection`
for every site record, in the appending transaction, and by the replay that ``cellauto
verify`` runs over the chain; so the rows of ``materials``, ``lots`` and ``equipment``
are always what the records say. Each row keeps ``source_seq``/``source_hash``: the last
site record that set it.

The run side changes two columns of ``lots`` besides: ``remaining_milli`` (each use of a
lot, in the commit of its ``material_consumed`` record) and ``reserved_milli`` (the
reservation taken when a run is claimed). Those are not site records; their replay adds
every run's uses to the site records' quantities.
"""

from __future__ import annotations

import sqlite3

import orjson

from cellauto.errors import JournalError
from cellauto.records.backend import Conn
from cellauto.records.refs import SiteRef
from cellauto.records.site_payload_base import SitePayload
from cellauto.records.site_payloads_mat import (
    CalibrationRecorded,
    EquipmentAdded,
    EquipmentStatus,
    EquipmentStatusChanged,
    LotAdjusted,
    LotReceived,
    LotRejected,
    LotReleased,
    MaterialDefined,
)

__all__ = [
    "EQUIPMENT_COLUMNS",
    "LOT_COLUMNS",
    "MATERIAL_COLUMNS",
    "apply_material_projection",
]

MATERIAL_COLUMNS = "material, material_kind, unit, storage, attributes, source_seq, source_hash"
LOT_COLUMNS = (
    "lot_id, material, supplier, supplier_lot, received_on, expires_on, status, received_by,"
    " received_milli, remaining_milli, reserved_milli, attributes, source_seq, source_hash"
)
EQUIPMENT_COLUMNS = (
    "asset, interface, vendor, model, serial, status, iq_on, oq_on, pq_on, calibration_due,"
    " notes, source_seq, source_hash"
)


def _json(value: object) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _insert(conn: Conn, sql: str, args: tuple[object, ...], what: str) -> None:
    try:
        conn.execute(sql, args)
    except sqlite3.IntegrityError as exc:
        raise JournalError(f"{what}, which exists") from exc


def _update(conn: Conn, sql: str, args: tuple[object, ...], what: str) -> None:
    if conn.execute(sql, args).rowcount != 1:
        raise JournalError(f"{what}, which was never recorded")


def apply_material_projection(conn: Conn, payload: SitePayload, ref: SiteRef) -> None:
    """Update ``materials``, ``lots`` or ``equipment`` for one site record (no-op for others)."""
    source = (ref.seq, ref.hash)
    if isinstance(payload, MaterialDefined):
        _insert(
            conn,
            f"INSERT INTO materials ({MATERIAL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                payload.material,
                payload.material_kind.value,
                payload.unit.value,
                payload.storage.value,
                _json(payload.attributes),
                *source,
            ),
            f"site record {ref.seq} defines material {payload.material!r}",
        )
    elif isinstance(payload, LotReceived):
        _insert(
            conn,
            f"INSERT INTO lots ({LOT_COLUMNS})"
            " VALUES (?, ?, ?, ?, ?, ?, 'quarantine', ?, ?, ?, 0, ?, ?, ?)",
            (
                payload.lot_id,
                payload.material,
                payload.supplier,
                payload.supplier_lot,
                payload.received_on.isoformat(),
                payload.expires_on.isoformat(),
                payload.by,
                payload.quantity_milli,
                payload.quantity_milli,
                _json(payload.attributes),
                *source,
            ),
            f"site record {ref.seq} receives lot {payload.lot_id!r}",
        )
    elif isinstance(payload, LotReleased | LotRejected):
        status = "released" if isinstance(payload, LotReleased) else "rejected"
        _update(
            conn,
            "UPDATE lots SET status = ?, source_seq = ?, source_hash = ? WHERE lot_id = ?",
            (status, *source, payload.lot_id),
            f"site record {ref.seq} sets lot {payload.lot_id!r} {status}",
        )
    elif isinstance(payload, LotAdjusted):
        _update(
            conn,
            "UPDATE lots SET remaining_milli = remaining_milli + ?, source_seq = ?,"
            " source_hash = ? WHERE lot_id = ?",
            (payload.delta_milli, *source, payload.lot_id),
            f"site record {ref.seq} adjusts lot {payload.lot_id!r}",
        )
    else:
        _apply_equipment(conn, payload, ref)


def _apply_equipment(conn: Conn, payload: SitePayload, ref: SiteRef) -> None:
    source = (ref.seq, ref.hash)
    if isinstance(payload, EquipmentAdded):
        q = payload.qualification
        _insert(
            conn,
            f"INSERT INTO equipment ({EQUIPMENT_COLUMNS})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                payload.asset,
                payload.interface,
                payload.vendor,
                payload.model,
                payload.serial,
                EquipmentStatus.QUALIFYING.value,
                *(None if d is None else d.isoformat() for d in (q.iq, q.oq, q.pq)),
                None if payload.calibration_due is None else payload.calibration_due.isoformat(),
                payload.notes,
                *source,
            ),
            f"site record {ref.seq} adds equipment {payload.asset!r}"
            f" (or serial {payload.serial!r} of {payload.vendor} {payload.model})",
        )
    elif isinstance(payload, EquipmentStatusChanged):
        sets, args = ["status = ?"], [payload.status.value]
        if payload.qualification is not None:
            for name in ("iq", "oq", "pq"):
                value = getattr(payload.qualification, name)
                if value is not None:
                    sets.append(f"{name}_on = ?")
                    args.append(value.isoformat())
        if payload.maintenance_note:
            sets.append("notes = ?")
            args.append(payload.maintenance_note)
        _update(
            conn,
            f"UPDATE equipment SET {', '.join(sets)}, source_seq = ?, source_hash = ?"
            " WHERE asset = ?",
            (*args, *source, payload.asset),
            f"site record {ref.seq} changes equipment {payload.asset!r}",
        )
    elif isinstance(payload, CalibrationRecorded):
        passed = payload.result == "pass"
        column = "calibration_due" if passed else "status"
        value = payload.due.isoformat() if passed else EquipmentStatus.OUT_OF_SERVICE.value
        _update(
            conn,
            f"UPDATE equipment SET {column} = ?, source_seq = ?, source_hash = ? WHERE asset = ?",
            (value, *source, payload.asset),
            f"site record {ref.seq} calibrates equipment {payload.asset!r}",
        )
