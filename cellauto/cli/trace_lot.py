"""``cellauto trace --lot LOT``: every run that drew from a lot, each use confirmed.

The ``lot_uses`` table indexes every ``material_consumed`` record by lot (a simulated
run's uses too, against its ``SIM-`` lots), so the runs that used a lot are one query.
The index is not trusted: each hit is confirmed against the run record it names (the
record at ``run_seq`` must be that use's ``material_consumed``: same use, lot and
quantity); one that is not is shown as such, and the command exits 1. The header
describes the lot from the site when the file's site has it (supplier, status, expiry,
what is left).
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import orjson
from pydantic import BaseModel

from cellauto.errors import RunNotFoundError
from cellauto.records import Journal, RecordKind
from cellauto.records._schema import is_missing_table
from cellauto.records.backend import Conn, Location
from cellauto.records.material_payloads import MaterialConsumed, MaterialUseVoided
from cellauto.records.payloads import RunEnded, RunStarted
from cellauto.site.materials_read import LotRow, lot_state, read_lot

__all__ = ["LotTrace", "LotUseHit", "render_lot_trace", "trace_lot", "trace_lot_command"]


_KINDS = {
    RecordKind.RUN_STARTED,
    RecordKind.RUN_ENDED,
    RecordKind.MATERIAL_CONSUMED,
    RecordKind.MATERIAL_USE_VOIDED,
}
"""The records a use is confirmed and described by."""


class LotUseHit(BaseModel):
    """One use of the lot by a run, as its run record says."""

    run_id: str
    use_key: str
    run_seq: int
    quantity_milli: int
    voided: bool
    confirmed: bool
    record_hash: str | None = None
    step: str | None = None
    into: str | None = None
    amount_basis: str | None = None
    unit: str | None = None
    at: datetime | None = None
    """When the use was recorded (the record's wall time)."""
    protocol: str | None = None
    din: str | None = None
    coi: str | None = None
    outcome: str | None = None
    """The run's final state, or None while it runs."""
    problem: str | None = None


class LotHeader(BaseModel):
    """The lot as the file's site has it."""

    material: str
    supplier: str
    supplier_lot: str
    expires_on: str
    status: str
    state: str
    remaining_milli: int


class LotTrace(BaseModel):
    lot_id: str
    site: LotHeader | None
    uses: list[LotUseHit]

    @property
    def confirmed(self) -> bool:
        return all(use.confirmed for use in self.uses)


def _uses(conn: Conn, lot_id: str) -> list[tuple[str, str, int, int, int]]:
    try:
        return conn.execute(
            "SELECT run_id, use_key, run_seq, quantity_milli, voided FROM lot_uses"
            " WHERE lot_id = ? ORDER BY run_id, run_seq",
            (lot_id,),
        ).fetchall()
    except sqlite3.OperationalError as exc:
        if is_missing_table(exc):
            return []
        raise


def _header(row: LotRow | None) -> LotHeader | None:
    if row is None:
        return None
    return LotHeader(
        material=row.material,
        supplier=row.supplier,
        supplier_lot=row.supplier_lot,
        expires_on=row.expires_on.isoformat(),
        status=row.status,
        state=lot_state(row, datetime.now(UTC).date()),
        remaining_milli=row.remaining_milli,
    )


def _confirm(journal: Journal, lot_id: str, row: tuple[str, str, int, int, int]) -> LotUseHit:
    run_id, use_key, run_seq, quantity, voided = row
    hit = LotUseHit(
        run_id=run_id, use_key=use_key, run_seq=run_seq, quantity_milli=quantity,
        voided=bool(voided), confirmed=False,
    )  # fmt: skip
    try:
        records = journal.records(run_id, _KINDS)  # not the run's other ~1,000 records
    except RunNotFoundError:
        return hit.model_copy(update={"problem": f"run {run_id} has no records in this file"})
    record = next((r for r in records if r.seq == run_seq), None)
    body = record.payload if record is not None else None
    if record is None or not isinstance(body, MaterialConsumed):
        found = "no record" if record is None else f"a {record.kind.value} record"
        return hit.model_copy(
            update={"problem": f"run {run_id} #{run_seq} is {found}, not material_consumed"}
        )
    if (body.use_key, body.lot.lot_id, body.quantity_milli) != (use_key, lot_id, quantity):
        said = f"{body.use_key!r} of {body.lot.lot_id} ({body.quantity_milli})"
        return hit.model_copy(
            update={"problem": f"lot_uses row differs from run {run_id} #{run_seq}: {said}"}
        )
    void_said = any(
        isinstance(r.payload, MaterialUseVoided) and r.payload.use_key == use_key for r in records
    )
    problem = None
    if bool(voided) and not void_said:
        problem = f"lot_uses says voided but run {run_id} records no material_use_voided"
    started = records[0].payload if records else None
    ended = records[-1].payload if records else None
    params = started.parameters if isinstance(started, RunStarted) else {}
    return hit.model_copy(
        update={
            "confirmed": problem is None,
            "record_hash": record.hash,
            "step": body.step,
            "into": body.into,
            "amount_basis": body.amount_basis,
            "unit": body.unit,
            "at": record.wall_time,
            "protocol": (
                f"{started.protocol_name} {started.protocol_version}"
                if isinstance(started, RunStarted)
                else None
            ),
            "din": params.get("din"),
            "coi": params.get("coi"),
            "outcome": ended.final_state if isinstance(ended, RunEnded) else None,
            "problem": problem,
        }
    )


def trace_lot(journal: Journal, conn: Conn, lot_id: str) -> LotTrace:
    """The lot's uses in the journal, each confirmed against its run record."""
    uses = [_confirm(journal, lot_id, row) for row in _uses(conn, lot_id)]
    try:
        header = _header(read_lot(conn, lot_id))
    except sqlite3.OperationalError:
        header = None
    return LotTrace(lot_id=lot_id, site=header, uses=uses)


def render_lot_trace(trace: LotTrace) -> str:
    lines = [f"lot {trace.lot_id}"]
    site = trace.site
    if site is None:
        lines.append("  not on this file's site (a simulated run's lot, or another site's)")
    else:
        lines.append(
            f"  {site.material}: {site.supplier} lot {site.supplier_lot}, {site.state}, "
            f"expires {site.expires_on}, {site.remaining_milli / 1000:g} left"
        )
    if not trace.uses:
        lines.append("  no run used it")
    for use in trace.uses:
        status = "voided" if use.voided else "consumed"
        mark = "" if use.confirmed else f"  NOT CONFIRMED: {use.problem}"
        batch = " ".join(
            part
            for part in (
                use.protocol,
                f"DIN {use.din}" if use.din else None,
                f"COI {use.coi}" if use.coi else None,
            )
            if part
        )
        when = f" at {use.at:%Y-%m-%d %H:%M} UTC" if use.at else ""
        outcome = f"; run {use.outcome}" if use.outcome else "; run not ended"
        lines.append(
            f"  run {use.run_id} {batch} #{use.run_seq} {use.step or '?'}: {use.use_key!r} "
            f"{use.quantity_milli / 1000:g} {use.unit or ''} into {use.into or '?'}{when}"
            f" ({status}{outcome}){mark}".replace("  into", " into")
        )
    return "\n".join(lines)


def trace_lot_command(
    db: str | Path | Location, lot_id: str, *, output: Literal["text", "json"] = "text"
) -> int:
    """Print the lot's trace; exit code 0, or 1 if a use could not be confirmed."""
    with Journal(db, create=False) as journal:
        trace = trace_lot(journal, journal.read_connection(), lot_id)
    if output == "json":
        print(orjson.dumps(trace.model_dump(mode="json"), option=orjson.OPT_INDENT_2).decode())
    else:
        print(render_lot_trace(trace))
    return 0 if trace.confirmed else 1
