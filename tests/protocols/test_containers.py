"""Declared containers: each created once with its identity, transfers recorded at the
instrument boundary, the containers table written with the records, resume-safe."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

import pytest

from cellauto import Protocol, Run
from cellauto.errors import ProtocolDefinitionError
from cellauto.identity import ContainerPlan
from cellauto.records.backend import Location
from cellauto.records.container_rows import read_containers
from cellauto.records.material_payloads import ContainerCreated, CustodyMoved, Transfer
from cellauto.records.payloads import RunResumed
from cellauto.sim import simulate
from tests.protocols.bagging import DIN, POSITION, protocol
from tests.raw_sql import raw_connect

CAR_T = Path(__file__).resolve().parents[2] / "protocols" / "car_t_autologous.py"


def test_every_declared_container_is_created_once(db_location: Location, tmp_path: Path) -> None:
    db = db_location
    run = simulate(protocol, params={"bags": 2}, db=db, patient="typical")
    assert run.exit_status == "complete", run.outcome.reason
    created = run.of_kind(ContainerCreated)
    assert [c.key for c in created] == ["apheresis bag", "final product 1", "final product 2"]
    assert {c.identity.din for c in created} == {DIN}
    assert [c.identity.flag for c in created] == ["77", "01", "02"]
    assert created[1].parent_keys == ["apheresis bag"]
    with closing(raw_connect(db)) as conn:
        rows = read_containers(conn, run.outcome.run_id)
    assert [(r.key, r.place_name, r.position) for r in rows] == [
        ("apheresis bag", "cleanroom bench", None),
        ("final product 1", "storage", str(POSITION)),
        ("final product 2", "processor", None),
    ]
    seqs = {r.seq: r for r in run.records}
    assert all(seqs[row.created_seq].kind == "container_created" for row in rows)
    assert all(seqs[row.last_seq].kind == "custody_moved" for row in rows)


def test_transfer_recorded_from_program_inputs() -> None:
    run = simulate(protocol, params={"bags": 2}, patient="typical")
    transfers = run.of_kind(Transfer)
    assert [(t.source, t.destination, t.by) for t in transfers] == [
        ("apheresis bag", "final product 1", "processor"),
        ("apheresis bag", "final product 2", "processor"),
    ]


def test_an_undeclared_container_fails_the_step_naming_the_declared() -> None:
    async def make(run: Run) -> None:
        await run.containers.create("culture bag")

    broken = Protocol("broken", version="1", params=protocol.params, inputs=protocol.inputs,
                      containers=protocol.containers)  # fmt: skip
    broken.step(make)
    run = simulate(broken, patient="typical")
    assert run.exit_status == "failed"
    assert "container 'culture bag' is not declared; declared: apheresis bag" in run.outcome.reason


def test_containers_without_a_din_parameter_are_refused() -> None:
    with pytest.raises(ProtocolDefinitionError, match="din_param='din'"):
        Protocol("plain", version="1",
                 containers=[ContainerPlan(key="bag", container_type="culture bag")])  # fmt: skip


@pytest.fixture(scope="module")
def car_t_crashed():  # type: ignore[no-untyped-def]
    """A CAR-T batch (3 bags) whose controller dies mid-expansion and in the label step."""
    return simulate(
        CAR_T,
        params={"expansion_days": 7, "bags": 3},
        crashes=[30.0, 176.85],
        downtime_h=0.1,
        patient="typical",
    )


def test_car_t_containers_are_not_created_twice_across_crashes(car_t_crashed) -> None:  # type: ignore[no-untyped-def]
    run = car_t_crashed
    assert run.exit_status == "complete", run.outcome.reason
    assert len(run.of_kind(RunResumed)) == 2
    keys = [c.key for c in run.of_kind(ContainerCreated)]
    assert keys == [
        "apheresis bag",
        "enriched product",
        "culture bag",
        "harvest bag",
        "washed product",
        "final product 1",
        "final product 2",
        "final product 3",
        "QC sample",
        "count 1",  # 1.3.0: the liquid handler's aliquots
        "count 2",
        "release plate",
        "QC retain 1",
        "QC retain 2",
    ]
    pairs = [(t.source, t.destination) for t in run.of_kind(Transfer)]
    assert len(pairs) == len(set(pairs)) == 13
    qc = run.of_kind(ContainerCreated)[-6]
    assert qc.parent_keys == ["final product 1"] and qc.identity.product_code == "S9004100"
    last = {m.container: m for m in run.of_kind(CustodyMoved)}
    assert [str(last[f"final product {n}"].to_place) for n in (1, 2, 3)] == [
        f"storage rack A box 1 slot {n}" for n in (1, 2, 3)
    ]
