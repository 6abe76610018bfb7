"""Hand-offs are scans checked against the container's identity; storage positions are
read back and checked, at storage and at retrieval."""

from __future__ import annotations

import pytest

from cellauto.errors import IdentityMismatchError
from cellauto.identity import identities
from cellauto.instruments.cryo_storage import StoragePosition
from cellauto.protocols.handoff import handoff_data, parse_handoff_scan
from cellauto.records import payloads as rec
from cellauto.records.material_payloads import CustodyMoved
from cellauto.sim import simulate
from cellauto.sim.faults import WrongBagInView
from cellauto.sim.operators import Answer
from cellauto.sim.storage import SimCryoStorage
from tests.protocols.bagging import COI, DIN, POSITION, plans, protocol

IDS = identities(DIN, COI, plans(protocol.params(din=DIN, coi=COI)))
BAG = handoff_data(IDS["apheresis bag"])
PRODUCT = handoff_data(IDS["final product"])


def test_a_good_batch_records_each_hand_off_scan_and_move() -> None:
    run = simulate(protocol, patient="typical")
    assert run.exit_status == "complete", run.outcome.reason
    handoffs = [c for c in run.identity_checks if c.check.startswith("hand-off")]
    assert [(c.check, c.observed, c.passed) for c in handoffs] == [
        ("hand-off: apheresis bag to cleanroom bench", BAG, True),
        (f"hand-off: final product to storage {POSITION}", PRODUCT, True),
    ]
    moves = run.of_kind(CustodyMoved)
    assert [(m.container, str(m.to_place)) for m in moves] == [
        ("apheresis bag", "cleanroom bench"),
        ("final product", "processor"),  # where the processor filled it
        ("final product", f"storage {POSITION}"),
    ]
    assert moves[0].by == "sim:operator-a" and moves[0].task_id is not None
    assert moves[2].from_place is not None and moves[2].from_place.name == "processor"


def test_wrong_bag_at_freezer_aborts() -> None:
    """The operator's scanner reads the bag beside the one to be carried into LN2."""
    good = simulate(protocol, patient="typical")
    opened = next(
        r
        for r in good.records
        if isinstance(r.payload, rec.TaskOpened) and r.payload.name == "transfer into LN2"
    )
    at_h = (opened.process_time_s - good.records[0].process_time_s) / 3600  # once labelled
    fault = WrongBagInView(container="final product", shows="apheresis bag", at_h=at_h)
    run = simulate(protocol, faults={"scanner": [fault]}, patient="typical")
    assert run.exit_status == "aborted"
    check = run.identity_checks[-1]
    assert (check.observed, check.expected, check.passed) == (BAG, PRODUCT, False)
    assert run.deviations[-1].policy == "abort"
    assert "hand-off: final product to storage" in run.outcome.reason
    assert not any(c.method == "store" for c in run.of_kind(rec.InstrumentCommand))
    assert [m.container for m in run.of_kind(CustodyMoved)] == ["apheresis bag", "final product"]


def test_scanned_din_bad_flag_check_aborts() -> None:
    """Flag 60-96 carries the DIN's check character: a misread DIN is caught by it."""
    misread = "=" + DIN[:-1] + "9" + BAG[14:]
    run = simulate(
        protocol, operators={"scan apheresis bag": Answer(value=misread)}, patient="typical"
    )
    assert run.exit_status == "aborted"
    check = run.identity_checks[-1]
    assert not check.passed and check.identifier is None
    assert "check character" in (check.problem or "")
    assert run.deviations[-1].policy == "abort"
    assert not run.of_kind(CustodyMoved)


def test_another_product_code_of_the_same_batch_aborts() -> None:
    run = simulate(
        protocol, operators={"scan apheresis bag": Answer(value=PRODUCT)}, patient="typical"
    )
    assert run.exit_status == "aborted"
    assert run.identity_checks[-1].observed == PRODUCT


def test_a_scan_of_only_the_din_aborts_naming_what_is_missing() -> None:
    run = simulate(
        protocol,
        operators={"scan apheresis bag": Answer(value=BAG.split("<")[0])},
        patient="typical",
    )
    assert run.exit_status == "aborted"
    assert "scan both barcodes" in (run.identity_checks[-1].problem or "")


@pytest.mark.parametrize(
    ("scan", "why"),
    [
        ("", "not a DIN and a product code"),
        ("=G12349865432199<S9000100", "flag '99' is not one we use"),
        ("=G12349865432165<S9000100", "check character '5'"),
        ("=G12349865432177<S90001", "not a product code"),
    ],
)
def test_parse_handoff_scan_refuses(scan: str, why: str) -> None:
    with pytest.raises(IdentityMismatchError, match=why):
        parse_handoff_scan(scan)


class _ShiftedStorage(SimCryoStorage):
    """Stores a bag one slot further than asked (a mis-sorted box)."""

    async def store(self, container_id: str, position: StoragePosition):  # type: ignore[no-untyped-def]
        moved = position.model_copy(update={"slot": position.slot + 1})
        return await super().store(container_id, moved)


def test_storage_position_mismatch_aborts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("cellauto.sim.line.SIMULATORS", [
        _ShiftedStorage if s is SimCryoStorage else s
        for s in __import__("cellauto.sim.line", fromlist=["SIMULATORS"]).SIMULATORS
    ])  # fmt: skip
    run = simulate(protocol, patient="typical")
    assert run.exit_status == "aborted"
    deviation = run.deviations[-1]
    assert deviation.check == "storage position of final product" and deviation.policy == "abort"
    assert "rack A box 2 slot 4" in deviation.description
    assert not run.identity_checks[-1].passed


def test_retrieval_checks_the_recorded_position() -> None:
    run = simulate(protocol, params={"retrieve": True}, patient="typical")
    assert run.exit_status == "complete", run.outcome.reason
    last = run.of_kind(CustodyMoved)[-1]
    assert last.from_place is not None and last.from_place.position == POSITION
    assert str(last.to_place) == "thaw bench"


class _MovedInStorage(SimCryoStorage):
    """Someone moved the bag to another slot while it was stored."""

    async def retrieve(self, container_id: str):  # type: ignore[no-untyped-def]
        item = self._items[container_id]
        self._items[container_id] = item.model_copy(
            update={"position": StoragePosition(rack="C", box=9, slot=9)}
        )
        return await super().retrieve(container_id)


def test_retrieval_position_mismatch_aborts(monkeypatch: pytest.MonkeyPatch) -> None:
    import cellauto.sim.line as line

    monkeypatch.setattr(
        line, "SIMULATORS", [_MovedInStorage if s is SimCryoStorage else s for s in line.SIMULATORS]
    )
    run = simulate(protocol, params={"retrieve": True}, patient="typical")
    assert run.exit_status == "aborted"
    deviation = run.deviations[-1]
    assert deviation.check == "retrieval position of final product"
    assert "rack C box 9 slot 9" in deviation.description and str(POSITION) in deviation.description


def test_a_hand_off_read_by_the_lines_scanner_asks_no_one() -> None:
    run = simulate(protocol, params={"receipt_scanner": True}, patient="typical")
    assert run.exit_status == "complete", run.outcome.reason
    first = run.of_kind(CustodyMoved)[0]
    assert (first.container, first.scanned, first.task_id) == ("apheresis bag", BAG, None)
    assert first.by.startswith("SimScan 2D s/n ")  # the scanner, named by its identity
    assert "scan apheresis bag" not in {t.name for t in run.tasks}


def test_the_lines_scanner_seeing_another_bag_aborts_the_hand_off() -> None:
    fault = WrongBagInView(container="apheresis bag", shows="final product")
    run = simulate(
        protocol, params={"receipt_scanner": True}, faults={"scanner": [fault]}, patient="typical"
    )
    assert run.exit_status == "aborted"
    assert run.identity_checks[-1].check == "hand-off: apheresis bag to cleanroom bench"
