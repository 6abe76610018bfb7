"""What a material's use writes: the lot's reservation topped up, the consumption with
the lot's decrement in one commit, a void that gives the quantity back (see
:mod:`.materials`). A file site's lots change in the run's journal commits; a
simulation's own site is written directly, after the commit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cellauto.clock import time_paused
from cellauto.protocols.bom import Material
from cellauto.records._lot_ops import (
    ConsumeLot,
    LotAfter,
    ReserveMore,
    VoidUse,
    decrement,
    give_back,
    reserve_more,
)
from cellauto.records.material_payloads import LotSnapshot, MaterialConsumed, MaterialUseVoided
from cellauto.site.materials_read import LotRow, snapshot

if TYPE_CHECKING:
    from cellauto.protocols.execution import Execution

__all__ = ["consume", "outstanding", "quantity", "reserve_extra", "void_use", "writing"]


def quantity(milli: int, unit: str) -> str:
    """A quantity in milli-units, as people read it."""
    return f"{milli / 1000:g} {unit}"


def outstanding(execution: Execution, lot_id: str) -> int:
    """What this run still has reserved of the lot (reserved less used)."""
    site = execution.site
    assert site is not None
    with site.reading() as conn:
        row = conn.execute(
            "SELECT reserved_milli - used_milli FROM lot_reservations"
            " WHERE run_id = ? AND lot_id = ? AND open = 1",
            (execution.run_id, lot_id),
        ).fetchone()
    return max(0, row[0]) if row else 0


async def reserve_extra(
    execution: Execution, material: Material, lot: LotRow, need: int, on: str
) -> str | None:
    """Reserve what this run still lacks of a scanned lot it had not reserved (its
    own commit, before the use's record) on the site's day ``on``; the problem if it could
    not be."""
    site = execution.site
    assert site is not None
    more = need - outstanding(execution, lot.lot_id)
    if more <= 0:  # reserved already (a scan retried after a crash)
        return None
    args = (execution.run_id, lot.lot_id, material.name, more, on)
    with time_paused():
        if site.kind == "file":
            (reserved,) = await execution.journal_run_ops([ReserveMore(*args)])
        else:
            with writing(site) as conn:
                reserved = reserve_more(conn, *args)
    if reserved is True:
        return None
    unit = material.amount.unit.value
    return (
        f"lot {lot.lot_id!r} ({material.name}) could not be reserved ({quantity(more, unit)}"
        f" on {on}): another run reserved it, or it was rejected, since the check: not used"
    )


async def consume(
    execution: Execution,
    material: Material,
    key: str,
    into: str,
    lot: LotRow,
    need: int,
    scanned: str | None = None,
) -> LotAfter:
    """The material_consumed record and the lot's decrement, in one commit."""
    site = execution.site
    assert site is not None
    snap: LotSnapshot = snapshot(lot)
    ref = execution.record_ref(
        MaterialConsumed(
            step=execution.current_step_name or "",
            use_key=key,
            material=material.name,
            lot=snap,
            quantity_milli=need,
            unit=material.amount.unit.value,
            how_chosen="assigned" if scanned is None else "scanned",
            scanned=scanned,
            into=into,
            amount_basis=material.amount.describe(need / 1000),
        )
    )
    on_file = site.kind == "file"
    op = ConsumeLot(execution.run_id, key, lot.lot_id, need, ref.seq, site_side=on_file)
    with time_paused():
        (after,) = await execution.journal_run_ops([op])
    assert isinstance(after, LotAfter)
    if on_file:
        return after
    with writing(site) as conn:  # a simulation's own site: its lot, after the commit
        if after.inserted:
            decrement(conn, execution.run_id, lot.lot_id, need)
        row = conn.execute(
            "SELECT status, expires_on, remaining_milli FROM lots WHERE lot_id = ?",
            (lot.lot_id,),
        ).fetchone()
    return LotAfter(after.inserted, row[0], row[1], row[2])


async def void_use(execution: Execution, key: str, lot_id: str, need: int, after: LotAfter) -> None:
    """Void a use whose lot was rejected or overdrawn in its commit: the quantity is given
    back, in the run's next commit."""
    site = execution.site
    assert site is not None
    cause = f"lot {lot_id} {after.status}, {after.remaining_milli} milli-units left at use"
    execution.record(
        MaterialUseVoided(
            step=execution.current_step_name or "",
            use_key=key,
            lot_id=lot_id,
            quantity_milli=need,
            cause=cause,
        )
    )
    on_file = site.kind == "file"
    op = VoidUse(execution.run_id, key, lot_id, need, site_side=on_file)
    with time_paused():
        (voided,) = await execution.journal_run_ops([op])
    if not on_file and voided:
        with writing(site) as conn:
            give_back(conn, execution.run_id, lot_id, need)


def writing(site: object) -> Any:
    """The write connection of a simulation's own site."""
    write = getattr(site, "writing", None)
    if write is None:
        raise TypeError(f"{site!r} takes no writes (a simulation's own site does)")
    return write()
