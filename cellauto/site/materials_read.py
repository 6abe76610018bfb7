"""Reading materials, lots and equipment as a run relies on them: confirmed, never trusted.

A row of ``materials``, ``lots`` or ``equipment`` is confirmed by replaying the site
records of that one material, lot or instrument and comparing, so a row edited behind the
chain's back is refused with :class:`~cellauto.errors.JournalError`, not used. A lot's
remaining and reserved quantities also change with runs' uses and reservations: those two
columns are checked by ``cellauto verify``, which replays every run too.

A lot's ``expired`` and ``depleted`` states are computed here, from its expiry date and
remaining quantity against the day asked about (:func:`lot_state`); they are never stored.
A file of schema version 4 (no materials yet) reads as having none.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from datetime import date
from typing import Any, Literal, NamedTuple

import orjson

from cellauto.errors import JournalError
from cellauto.records._schema import MATERIAL_STATEMENTS, is_missing_table, site_row_filter
from cellauto.records.backend import Conn
from cellauto.records.material_payloads import LotSnapshot
from cellauto.records.refs import SiteRef
from cellauto.records.site_payloads_mat import (
    CalibrationRecorded,
    EquipmentAdded,
    EquipmentStatusChanged,
    LotAdjusted,
    LotReceived,
    LotRejected,
    LotReleased,
    MaterialDefined,
)
from cellauto.site._chain import VERIFY_HINT, stored_site_records_where
from cellauto.site.projection_materials import (
    EQUIPMENT_COLUMNS,
    LOT_COLUMNS,
    MATERIAL_COLUMNS,
    apply_material_projection,
)

__all__ = [
    "EquipmentRow",
    "LotRow",
    "LotState",
    "MaterialRow",
    "list_equipment",
    "list_lots",
    "list_materials",
    "lot_state",
    "read_equipment",
    "read_lot",
    "read_material",
    "snapshot",
    "usable_lots",
]

LotState = Literal["quarantine", "released", "rejected", "expired", "depleted"]


class MaterialRow(NamedTuple):
    material: str
    material_kind: str
    unit: str
    storage: str
    attributes: tuple[str, ...]
    source_seq: int
    source_hash: str

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> MaterialRow:
        return cls(row[0], row[1], row[2], row[3], tuple(orjson.loads(row[4])), row[5], row[6])


class LotRow(NamedTuple):
    lot_id: str
    material: str
    supplier: str
    supplier_lot: str
    received_on: date
    expires_on: date
    status: str
    """What people decided: quarantine, released or rejected."""
    received_by: str
    received_milli: int
    remaining_milli: int
    reserved_milli: int
    attributes: dict[str, float | str]
    source_seq: int
    source_hash: str

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> LotRow:
        return cls(
            lot_id=row[0],
            material=row[1],
            supplier=row[2],
            supplier_lot=row[3],
            received_on=date.fromisoformat(row[4]),
            expires_on=date.fromisoformat(row[5]),
            status=row[6],
            received_by=row[7],
            received_milli=row[8],
            remaining_milli=row[9],
            reserved_milli=row[10],
            attributes=orjson.loads(row[11]),
            source_seq=row[12],
            source_hash=row[13],
        )

    @property
    def free_milli(self) -> int:
        """What is neither used nor reserved."""
        return self.remaining_milli - self.reserved_milli


class EquipmentRow(NamedTuple):
    asset: str
    interface: str
    vendor: str
    model: str
    serial: str
    status: str
    iq_on: date | None
    oq_on: date | None
    pq_on: date | None
    calibration_due: date | None
    notes: str
    source_seq: int
    source_hash: str

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> EquipmentRow:
        dates = (None if value is None else date.fromisoformat(value) for value in row[6:10])
        return cls(*row[:6], *dates, *row[10:])


def lot_state(row: LotRow, today: date) -> LotState:
    """The lot's state on ``today``: rejected and quarantine first, then expired, depleted."""
    if row.status in ("rejected", "quarantine"):
        return "rejected" if row.status == "rejected" else "quarantine"
    if today > row.expires_on:
        return "expired"
    if row.remaining_milli <= 0:
        return "depleted"
    return "released"


def snapshot(row: LotRow) -> LotSnapshot:
    """The lot as a run record embeds it (the lot must be released)."""
    return LotSnapshot(
        lot_id=row.lot_id,
        material=row.material,
        supplier_lot=row.supplier_lot,
        expires_on=row.expires_on,
        status="released",
        attributes=row.attributes,
        site=SiteRef(seq=row.source_seq, hash=row.source_hash),
    )


def _select(conn: Conn, sql: str, args: Sequence[Any] = ()) -> list[Any]:
    try:
        return conn.execute(sql, args).fetchall()
    except sqlite3.OperationalError as exc:
        if is_missing_table(exc):
            return []
        raise


def _row_key(payload: object) -> tuple[str, str] | None:
    """The (table, key) of the row a site record sets; None for other records."""
    if isinstance(payload, MaterialDefined):
        return "materials", payload.material
    if isinstance(payload, LotReceived | LotReleased | LotRejected | LotAdjusted):
        return "lots", payload.lot_id
    if isinstance(payload, EquipmentAdded | EquipmentStatusChanged | CalibrationRecorded):
        return "equipment", payload.asset
    return None


_KEYS = {"materials": "material", "lots": "lot_id", "equipment": "asset"}
_RUN_SIDE = {"lots": {"remaining_milli", "reserved_milli"}}
"""Columns the run side changes too (uses, reservations): checked by ``verify`` only."""


_scratch = threading.local()


def _scratch_db() -> Conn:
    """This thread's scratch database with the materials tables, always empty between
    replays (each replay runs in a transaction rolled back): creating the tables anew for
    every confirmation was most of its cost (a CAR-T simulation confirms ~50 rows)."""
    scratch: Conn | None = getattr(_scratch, "conn", None)
    if scratch is None:
        scratch = sqlite3.connect(":memory:", isolation_level=None)
        for statement in MATERIAL_STATEMENTS:
            scratch.execute(statement)
        _scratch.conn = scratch
    return scratch


def _confirm(conn: Conn, table: str, key: str) -> None:
    """Replay the site records of this one row and compare (the run-side columns aside)."""
    scratch = _scratch_db()
    scratch.execute("BEGIN")
    try:
        for record in stored_site_records_where(conn, site_row_filter(table), (key,)):
            if _row_key(record.payload) == (table, key):
                apply_material_projection(scratch, record.payload, record.ref)
        cursor = scratch.execute(f"SELECT * FROM {table} WHERE {_KEYS[table]} = ?", (key,))
        names = [d[0] for d in cursor.description]
        want = cursor.fetchone()
    finally:
        scratch.execute("ROLLBACK")
    skip = _RUN_SIDE.get(table, set())
    have_row = dict(zip(names, _stored_row(conn, table, key), strict=True))
    want_row = None if want is None else dict(zip(names, want, strict=True))
    for name in names:
        if name in skip:
            continue
        if want_row is None or have_row[name] != want_row[name]:
            said = "no site record" if want_row is None else f"site record {want_row['source_seq']}"
            shown = None if want_row is None else want_row[name]
            raise JournalError(
                f"{table} table edited: row {key!r} {name} {have_row[name]!r} but {said}"
                f" says {shown!r}; {VERIFY_HINT}"
            )


def _stored_row(conn: Conn, table: str, key: str) -> Sequence[Any]:
    row: Sequence[Any] = conn.execute(
        f"SELECT * FROM {table} WHERE {_KEYS[table]} = ?", (key,)
    ).fetchone()
    return row


def read_material(conn: Conn, material: str) -> MaterialRow | None:
    rows = _select(
        conn, f"SELECT {MATERIAL_COLUMNS} FROM materials WHERE material = ?", (material,)
    )
    if not rows:
        return None
    row = MaterialRow.from_row(rows[0])
    _confirm(conn, "materials", row.material)
    return row


def list_materials(conn: Conn) -> list[MaterialRow]:
    """Every material, by name (as stored: for listing)."""
    rows = _select(conn, f"SELECT {MATERIAL_COLUMNS} FROM materials ORDER BY material")
    return [MaterialRow.from_row(row) for row in rows]


def read_lot(conn: Conn, lot_id: str) -> LotRow | None:
    """The lot ``lot_id``, confirmed against its site record; None if there is none."""
    rows = _select(conn, f"SELECT {LOT_COLUMNS} FROM lots WHERE lot_id = ?", (lot_id,))
    if not rows:
        return None
    row = LotRow.from_row(rows[0])
    _confirm(conn, "lots", row.lot_id)
    return row


def list_lots(conn: Conn, material: str | None = None) -> list[LotRow]:
    """The lots of ``material`` (every lot when None), first expiry first (as stored)."""
    where, args = ("WHERE material = ?", (material,)) if material is not None else ("", ())
    rows = _select(
        conn, f"SELECT {LOT_COLUMNS} FROM lots {where} ORDER BY expires_on, lot_id", args
    )
    return [LotRow.from_row(row) for row in rows]


def usable_lots(conn: Conn, material: str, *, through: date, need_milli: int) -> list[LotRow]:
    """Released lots of ``material`` unexpired through ``through`` with ``need_milli`` free,
    first expiry first (FEFO), each confirmed against its site record."""
    rows = _select(
        conn,
        f"SELECT {LOT_COLUMNS} FROM lots WHERE material = ? AND status = 'released'"
        " AND expires_on >= ? AND remaining_milli - reserved_milli >= ?"
        " ORDER BY expires_on, lot_id",
        (material, through.isoformat(), need_milli),
    )
    lots = [LotRow.from_row(row) for row in rows]
    for lot in lots:
        _confirm(conn, "lots", lot.lot_id)
    return lots


def read_equipment(
    conn: Conn,
    *,
    asset: str | None = None,
    serial: tuple[str, str, str] | None = None,
) -> EquipmentRow | None:
    """An instrument by asset tag or by (vendor, model, serial), confirmed; None if unknown."""
    if (asset is None) == (serial is None):
        raise ValueError("read_equipment needs exactly one of asset= or serial=")
    if asset is not None:
        rows = _select(conn, f"SELECT {EQUIPMENT_COLUMNS} FROM equipment WHERE asset = ?", (asset,))
    else:
        assert serial is not None
        rows = _select(
            conn,
            f"SELECT {EQUIPMENT_COLUMNS} FROM equipment"
            " WHERE vendor = ? AND model = ? AND serial = ?",
            serial,
        )
    if not rows:
        return None
    row = EquipmentRow.from_row(rows[0])
    _confirm(conn, "equipment", row.asset)
    return row


def list_equipment(conn: Conn) -> list[EquipmentRow]:
    """Every instrument in the registry, by asset tag (as stored: for listing)."""
    rows = _select(conn, f"SELECT {EQUIPMENT_COLUMNS} FROM equipment ORDER BY asset")
    return [EquipmentRow.from_row(row) for row in rows]
