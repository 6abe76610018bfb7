"""A run's containers traced from its records: identity, genealogy, transfers, custody,
labels, and the lots and instruments that touched each (``cellauto trace``).

Read-only, and from the run chain only: the batch record is the authority. The
``containers`` table row of each container is read beside it, to show where the index
says the container is now and to name a row that is missing or disagrees. What the run
did not record (no lot consumed, no equipment checked: a run of a protocol that does not
declare them) is named as missing, never guessed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

from cellauto.identity.isbt128 import check_character
from cellauto.records.backend import Conn
from cellauto.records.container_rows import read_containers
from cellauto.records.material_payloads import (
    ContainerCreated,
    CustodyMoved,
    EquipmentChecked,
    LabelPrinted,
    LabelVerified,
    MaterialConsumed,
    MaterialUseVoided,
    Transfer,
)
from cellauto.records.models import Record
from cellauto.records.payloads import IdentityCheck, RunStarted

__all__ = ["ContainerTrace", "RunTrace", "trace_run"]


class ContainerTrace(BaseModel):
    """One container of a run, with everything its records say about it."""

    key: str
    container_type: str
    din: str
    din_text: str
    flag: str
    product_code: str
    coi: str
    coi_check: str
    parents: list[str]
    created: dict[str, Any]
    transfers_in: list[dict[str, Any]] = Field(default_factory=list)
    transfers_out: list[dict[str, Any]] = Field(default_factory=list)
    custody: list[dict[str, Any]] = Field(default_factory=list)
    labels: list[dict[str, Any]] = Field(default_factory=list)
    lots: list[dict[str, Any]] = Field(default_factory=list)
    instruments: list[dict[str, Any]] = Field(default_factory=list)
    place_now: str | None = None
    """Where the ``containers`` table says it is; None: no row."""
    depth: int = 0


class RunTrace(BaseModel):
    run_id: str
    protocol: str
    version: str
    din: str | None
    coi: str | None
    containers: list[ContainerTrace]
    missing: list[str]
    """What the records do not show, named (no containers, no lots, no equipment checks)."""


def _time(record: Record) -> float:
    return record.process_time_s


def _place(value: Any) -> str:
    return "(unknown)" if value is None else str(value)


def trace_run(records: Sequence[Record], conn: Conn | None = None) -> RunTrace:
    """The trace of one run's ``records`` (``conn``: the journal, for its table rows)."""
    started = next((r.payload for r in records if isinstance(r.payload, RunStarted)), None)
    run_id = records[0].run_id if records else ""
    found: dict[str, ContainerTrace] = {}
    scans: dict[str, IdentityCheck] = {}
    checked: dict[str, EquipmentChecked] = {}
    voided: set[str] = set()
    consumed: list[tuple[MaterialConsumed, float]] = []
    lots = 0
    for record in records:
        payload = record.payload
        when = _time(record)
        if isinstance(payload, ContainerCreated):
            ident = payload.identity
            found[payload.key] = ContainerTrace(
                key=payload.key,
                container_type=payload.container_type,
                din=ident.din,
                din_text=ident.text(),
                flag=ident.flag,
                product_code=ident.product_code,
                coi=ident.coi,
                coi_check=check_character(ident.coi),
                parents=list(payload.parent_keys),
                created={"seq": record.seq, "time_s": when, "step": payload.step},
            )
        elif isinstance(payload, Transfer):
            move = {"seq": record.seq, "time_s": when, "step": payload.step, "by": payload.by}
            if payload.destination in found:
                found[payload.destination].transfers_in.append({"from": payload.source, **move})
            if payload.source in found:
                found[payload.source].transfers_out.append({"to": payload.destination, **move})
        elif isinstance(payload, IdentityCheck) and payload.check.startswith("hand-off: "):
            scans[payload.check.removeprefix("hand-off: ").split(" to ", 1)[0]] = payload
        elif isinstance(payload, CustodyMoved) and payload.container in found:
            scan = scans.pop(payload.container, None)
            found[payload.container].custody.append(
                {
                    "seq": record.seq,
                    "time_s": when,
                    "from": _place(payload.from_place),
                    "to": str(payload.to_place),
                    "to_kind": payload.to_place.kind,
                    "by": payload.by,
                    "via": payload.via,
                    "scanned": payload.scanned,
                    "scan": None if scan is None else ("ok" if scan.passed else "mismatch"),
                }
            )
        elif isinstance(payload, LabelPrinted) and payload.container in found:
            found[payload.container].labels.append(
                {"seq": record.seq, "time_s": when, "event": "printed",
                 "printer": payload.printer, "zpl_sha256": payload.zpl_sha256}
            )  # fmt: skip
        elif isinstance(payload, LabelVerified) and payload.container in found:
            found[payload.container].labels.append(
                {"seq": record.seq, "time_s": when, "event": "verified",
                 "matches": payload.matches, "problem": payload.problem}
            )  # fmt: skip
        elif isinstance(payload, MaterialConsumed):
            lots += 1
            consumed.append((payload, when))  # attached below: into a container made later too
        elif isinstance(payload, MaterialUseVoided):
            voided.add(payload.use_key)
        elif isinstance(payload, EquipmentChecked):
            checked[payload.equipment] = payload
    for use, when in consumed:
        # ``into`` a container, or a set of them ("final product": each of its bags)
        for into in _into(found, use.into):
            found[into].lots.append(
                {"use_key": use.use_key, "material": use.material, "lot_id": use.lot.lot_id,
                 "quantity_milli": use.quantity_milli, "unit": use.unit, "step": use.step,
                 "time_s": when}
            )  # fmt: skip
    for trace in found.values():
        trace.lots = [lot for lot in trace.lots if lot["use_key"] not in voided]
        names = {t["by"] for t in trace.transfers_in} | {
            c["to"] for c in trace.custody if c["to_kind"] == "instrument"
        }
        for name in sorted(names):
            trace.instruments.append(_instrument(name, started, checked.get(name)))
    _rows(found, conn, run_id)
    missing = []
    if not found:
        missing.append("containers: the run recorded none (its protocol declares none)")
    if not lots:
        missing.append("lots: no material_consumed records in this run")
    if not checked:
        missing.append("instruments: no equipment_checked records in this run")
    for key, trace in found.items():
        recorded = trace.custody[-1]["to"] if trace.custody else "(no place recorded)"
        if trace.place_now is None:
            missing.append(f"{key}: no containers table row")
        elif trace.place_now != recorded:
            missing.append(
                f"{key}: the containers table places it at {trace.place_now!r}, its records "
                f"at {recorded!r}: the table was changed (run cellauto verify)"
            )
    din = coi = None
    if found:
        first = next(iter(found.values()))
        din, coi = first.din, first.coi
    return RunTrace(
        run_id=run_id,
        protocol=started.protocol_name if started else "(no run_started record)",
        version=started.protocol_version if started else "",
        din=din,
        coi=coi,
        containers=_genealogy(found),
        missing=missing,
    )


def _instrument(
    name: str, started: RunStarted | None, check: EquipmentChecked | None
) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name}
    ident = started.instruments.get(name) if started else None
    if ident is not None:
        entry.update(model=ident.model, serial=ident.serial)
    if check is not None:
        entry.update(
            asset=check.asset,
            calibration_due=None if check.calibration_due is None else str(check.calibration_due),
            passed=check.passed,
        )
    return entry


def _rows(found: dict[str, ContainerTrace], conn: Conn | None, run_id: str) -> None:
    if conn is None:
        return
    for row in read_containers(conn, run_id):
        trace = found.get(row.key)
        if trace is None:
            continue
        where = row.place_name or "(no place recorded)"
        trace.place_now = f"{where} {row.position}" if row.position else where


def _genealogy(found: dict[str, ContainerTrace]) -> list[ContainerTrace]:
    """Depth-first from the containers without a (recorded) parent, in creation order."""
    ordered: list[ContainerTrace] = []
    seen: set[str] = set()

    def visit(trace: ContainerTrace, depth: int) -> None:
        if trace.key in seen:
            return
        seen.add(trace.key)
        ordered.append(trace.model_copy(update={"depth": depth}))
        for child in found.values():
            if trace.key in child.parents:
                visit(child, depth + 1)

    for trace in found.values():
        if not any(parent in found for parent in trace.parents):
            visit(trace, 0)
    for trace in found.values():  # a cycle in the records: still shown
        visit(trace, 0)
    return ordered


def _into(found: dict[str, Any], into: str) -> list[str]:
    """The containers a material went into: the one named, else each of a set's
    (``final product`` -> ``final product 1``, ``final product 2``, ...)."""
    if into in found:
        return [into]
    return [key for key in found if key.startswith(f"{into} ") and key[len(into) + 1 :].isdigit()]
