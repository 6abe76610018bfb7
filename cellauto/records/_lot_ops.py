"""A lot's quantity decremented in the same commit as the run record that says it was used.

:class:`ConsumeLot` goes to the writer with a run's ``material_consumed`` record
(:meth:`cellauto.records.Journal.run_ops`): the record and the ``lot_uses`` row, and the
decrement of ``lots.remaining_milli``, are one transaction. The op is idempotent (the
``lot_uses`` row, keyed by run and use, is inserted first; the lot is decremented only if
it was; a use voided before counts again when retried) and never refuses on business
grounds: ``apply_ops`` would roll a refusing op
back and still commit the record beside it, and a record saying "consumed" must never
stand beside a decrement that did not happen. What the lot looked like after the commit
is the op's value (:class:`LotAfter`); a lot rejected or overdrawn in the window between
the controller's check and the commit shows there, and the controller voids the use
(:class:`VoidUse`, with a ``material_use_voided`` record) before adding anything.

For a simulated run (``site_side=False``) only the file's ``lot_uses`` row is written:
the lot lives in the simulation's own site, which the controller updates itself after
the commit (:func:`decrement` on its connection).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from cellauto.records._schema import upgrade
from cellauto.records._txops import TxOutcome
from cellauto.records.backend import Conn

__all__ = [
    "ConsumeLot",
    "LotAfter",
    "ReserveMore",
    "VoidUse",
    "decrement",
    "give_back",
    "release_orphans",
    "reserve_more",
]


class LotAfter(NamedTuple):
    """A lot as the commit left it (None fields: the lot is not on this file's site)."""

    inserted: bool
    """False: this use was already counted (a repeated commit after a resume)."""
    status: str | None
    expires_on: str | None
    remaining_milli: int | None


def decrement(conn: Conn, run_id: str, lot_id: str, quantity_milli: int) -> None:
    """Take a use off a lot and count it against the run's reservation."""
    conn.execute(
        "UPDATE lots SET remaining_milli = remaining_milli - ?,"
        " reserved_milli = MAX(0, reserved_milli - MIN(?, COALESCE((SELECT reserved_milli"
        " - used_milli FROM lot_reservations WHERE run_id = ? AND lot_id = ? AND open = 1),"
        " 0))) WHERE lot_id = ?",
        (quantity_milli, quantity_milli, run_id, lot_id, lot_id),
    )
    conn.execute(
        "UPDATE lot_reservations SET used_milli = used_milli + ? WHERE run_id = ? AND lot_id = ?",
        (quantity_milli, run_id, lot_id),
    )


def give_back(conn: Conn, run_id: str, lot_id: str, quantity_milli: int) -> None:
    """Undo :func:`decrement` (a use voided): the quantity is the lot's again."""
    conn.execute(
        "UPDATE lots SET remaining_milli = remaining_milli + ? WHERE lot_id = ?",
        (quantity_milli, lot_id),
    )
    conn.execute(
        "UPDATE lot_reservations SET used_milli = MAX(0, used_milli - ?)"
        " WHERE run_id = ? AND lot_id = ?",
        (quantity_milli, run_id, lot_id),
    )


def reserve_more(
    conn: Conn,
    run_id: str,
    lot_id: str,
    material: str,
    quantity_milli: int,
    on: str,
) -> bool:
    """Reserve ``quantity_milli`` more of a lot for the run (a lot scanned at use that the
    run had not reserved): a conditional update, so two runs never count on the same
    quantity. False (nothing written): not released, expired before ``on`` (ISO day),
    not of ``material``, or not that much free."""
    changed = conn.execute(
        "UPDATE lots SET reserved_milli = reserved_milli + ?"
        " WHERE lot_id = ? AND material = ? AND status = 'released' AND expires_on >= ?"
        " AND remaining_milli - reserved_milli >= ?",
        (quantity_milli, lot_id, material, on, quantity_milli),
    ).rowcount
    if changed != 1:
        return False
    conn.execute(
        "INSERT INTO lot_reservations (run_id, lot_id, reserved_milli, used_milli, open)"
        " VALUES (?, ?, ?, 0, 1) ON CONFLICT (run_id, lot_id) DO UPDATE SET"
        " reserved_milli = lot_reservations.reserved_milli + excluded.reserved_milli, open = 1",
        (run_id, lot_id, quantity_milli),
    )
    return True


class ReserveMore:
    """:func:`reserve_more` in a commit of its own, before the use's record: a failing
    reservation leaves no use behind. Its value: whether the lot was reserved."""

    def __init__(
        self, run_id: str, lot_id: str, material: str, quantity_milli: int, on: str
    ) -> None:
        self.run_id = run_id
        self.lot_id = lot_id
        self.material = material
        self.quantity_milli = quantity_milli
        self.on = on

    def apply(self, conn: Conn) -> TxOutcome:
        upgrade(conn)
        reserved = reserve_more(
            conn, self.run_id, self.lot_id, self.material, self.quantity_milli, self.on
        )
        return TxOutcome([], reserved)

    def __repr__(self) -> str:
        return f"ReserveMore({self.run_id} {self.lot_id} {self.quantity_milli})"


def _after(conn: Conn, lot_id: str, inserted: bool) -> LotAfter:
    row = conn.execute(
        "SELECT status, expires_on, remaining_milli FROM lots WHERE lot_id = ?", (lot_id,)
    ).fetchone()
    if row is None:
        return LotAfter(inserted, None, None, None)
    return LotAfter(inserted, row[0], row[1], row[2])


class ConsumeLot:
    """Count one use of a lot in the commit of its ``material_consumed`` record.

    ``site_side``: the lot is on this file's site (decrement it here); False for a
    simulated run, whose lot is in the simulation's own site.
    """

    def __init__(
        self,
        run_id: str,
        use_key: str,
        lot_id: str,
        quantity_milli: int,
        run_seq: int,
        *,
        site_side: bool = True,
    ) -> None:
        self.run_id = run_id
        self.use_key = use_key
        self.lot_id = lot_id
        self.quantity_milli = quantity_milli
        self.run_seq = run_seq
        self.site_side = site_side

    def apply(self, conn: Conn) -> TxOutcome:
        upgrade(conn)
        inserted = (
            conn.execute(
                "INSERT INTO lot_uses (run_id, use_key, lot_id, quantity_milli, run_seq)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (run_id, use_key) DO UPDATE SET"
                " lot_id = excluded.lot_id, quantity_milli = excluded.quantity_milli,"
                " run_seq = excluded.run_seq, voided = 0 WHERE lot_uses.voided = 1",
                (self.run_id, self.use_key, self.lot_id, self.quantity_milli, self.run_seq),
            ).rowcount
            == 1
        )
        if inserted and self.site_side:
            decrement(conn, self.run_id, self.lot_id, self.quantity_milli)
        if not self.site_side:
            return TxOutcome([], LotAfter(inserted, None, None, None))
        return TxOutcome([], _after(conn, self.lot_id, inserted))

    def __repr__(self) -> str:
        return f"ConsumeLot({self.run_id}:{self.use_key} {self.lot_id} {self.quantity_milli})"


class VoidUse:
    """Mark a use voided (its ``material_use_voided`` record is in the same commit) and
    give its quantity back to the lot, once."""

    def __init__(
        self, run_id: str, use_key: str, lot_id: str, quantity_milli: int, *, site_side: bool = True
    ) -> None:
        self.run_id = run_id
        self.use_key = use_key
        self.lot_id = lot_id
        self.quantity_milli = quantity_milli
        self.site_side = site_side

    def apply(self, conn: Conn) -> TxOutcome:
        upgrade(conn)
        changed = conn.execute(
            "UPDATE lot_uses SET voided = 1 WHERE run_id = ? AND use_key = ? AND voided = 0",
            (self.run_id, self.use_key),
        ).rowcount
        if changed == 1 and self.site_side:
            give_back(conn, self.run_id, self.lot_id, self.quantity_milli)
        return TxOutcome([], changed == 1)

    def __repr__(self) -> str:
        return f"VoidUse({self.run_id}:{self.use_key} {self.lot_id})"


def release_orphans(conn: Conn, gone: Callable[[str], bool]) -> list[str]:
    """Close the open reservations of runs prepared but never started (no records) whose
    controller is ``gone(run_id)``: a process that died between its claim and its first
    record. Runs with records keep theirs (they may be resumed). The runs released."""
    rows = conn.execute(
        "SELECT DISTINCT run_id FROM lot_reservations WHERE open = 1 AND NOT EXISTS"
        " (SELECT 1 FROM records WHERE records.run_id = lot_reservations.run_id)"
    ).fetchall()
    released = [run_id for (run_id,) in rows if gone(run_id)]
    for run_id in released:
        for lot_id, reserved, used in conn.execute(
            "SELECT lot_id, reserved_milli, used_milli FROM lot_reservations"
            " WHERE run_id = ? AND open = 1",
            (run_id,),
        ).fetchall():
            conn.execute(
                "UPDATE lots SET reserved_milli = MAX(0, reserved_milli - ?) WHERE lot_id = ?",
                (max(0, reserved - used), lot_id),
            )
        conn.execute("UPDATE lot_reservations SET open = 0 WHERE run_id = ?", (run_id,))
    return released
