"""The trace of a run's records attaches the lots consumed into a container (less those
voided) and the instruments it was in, with their equipment checks, when the run recorded
them (other record kinds of issue 11)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from cellauto.identity import ContainerPlan, identities
from cellauto.records.material_payloads import (
    ContainerCreated,
    CustodyMoved,
    EquipmentChecked,
    LotSnapshot,
    MaterialConsumed,
    MaterialUseVoided,
    Place,
    Transfer,
)
from cellauto.records.models import Record
from cellauto.records.payload_base import Payload
from cellauto.records.trace import trace_run

IDS = identities(
    "G123498654321",
    "W123426A1B2C3",
    [
        ContainerPlan(key="selected fraction", container_type="selected fraction"),
        ContainerPlan(
            key="culture bag", container_type="culture bag", parents=("selected fraction",)
        ),
    ],
)
LOT = LotSnapshot(
    lot_id="vector/L2291",
    material="CAR lentiviral vector",
    supplier_lot="L2291",
    expires_on=date(2027, 3, 31),
    status="released",
    site=None,
)


def _records(payloads: list[Payload]) -> list[Record]:
    return [
        Record(
            run_id="r1",
            seq=seq,
            kind=p.kind,
            process_time_s=1.8e9 + seq,
            wall_time_ns=seq,
            prev_hash="0" * 64,
            hash="0" * 64,
            payload=p,
        )
        for seq, p in enumerate(payloads)
    ]


def _consumed(use_key: str, quantity_milli: int) -> MaterialConsumed:
    return MaterialConsumed(step="transduce", use_key=use_key, material=LOT.material, lot=LOT,
                            quantity_milli=quantity_milli, how_chosen="assigned",
                            into="culture bag", amount_basis="cells x MOI / titre")  # fmt: skip


def test_lots_and_instruments_that_touched_a_container() -> None:
    records = _records([
        ContainerCreated(step="enrich", key="selected fraction", container_type="selected fraction",
                         identity=IDS["selected fraction"]),
        ContainerCreated(step="activate", key="culture bag", container_type="culture bag",
                         identity=IDS["culture bag"], parent_keys=["selected fraction"]),
        Transfer(step="activate", source="selected fraction", destination="culture bag",
                 by="bioreactor"),
        CustodyMoved(step="activate", container="culture bag", from_place=None,
                     to_place=Place(kind="instrument", name="bioreactor"), by="bioreactor"),
        EquipmentChecked(step="activate", equipment="bioreactor", asset="BR-001",
                         serial_read="B-7730", status="in_service",
                         calibration_due=date(2027, 2, 1),
                         through=datetime(2026, 12, 20, tzinfo=UTC), passed=True),
        _consumed("CAR lentiviral vector", 5100),
        _consumed("vector top-up", 1000),
        MaterialUseVoided(step="transduce", use_key="vector top-up", lot_id=LOT.lot_id,
                          quantity_milli=1000, cause="lot rejected meanwhile"),
    ])  # fmt: skip
    trace = trace_run(records)
    assert [c.key for c in trace.containers] == ["selected fraction", "culture bag"]
    bag = trace.containers[1]
    assert bag.depth == 1
    assert [(lot["lot_id"], lot["quantity_milli"]) for lot in bag.lots] == [("vector/L2291", 5100)]
    (instrument,) = bag.instruments
    assert instrument == {
        "name": "bioreactor",
        "asset": "BR-001",
        "calibration_due": "2027-02-01",
        "passed": True,
    }
    assert not any(m.startswith(("lots:", "instruments:")) for m in trace.missing)
