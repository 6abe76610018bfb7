"""The demo protocol on the simulated line, as the README shows a protocol test."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from cellauto.clock import Clock, virtual_loop_factory
from cellauto.protocols import Runner, load_protocol
from cellauto.records import Journal, verify_run
from cellauto.records import payloads as rec
from cellauto.records.backend import Location
from cellauto.sim import build_sim_line, starting_materials

pytestmark = pytest.mark.anyio
ORIGIN = datetime(2026, 2, 2, 6, 0, tzinfo=UTC)
DEMO = Path(__file__).resolve().parent.parent / "protocols" / "demo_expansion.py"


async def run_demo(tmp_path: Path, seed: int, **params: object):
    protocol = load_protocol(DEMO)
    values = protocol.params(**params)
    line, _world = build_sim_line(
        protocol.equipment(),
        clock=Clock(ORIGIN),
        seed=seed,
        materials=starting_materials(protocol.inputs, values),
    )
    journal = Journal(tmp_path / f"demo-{seed}.db")
    outcome = await Runner(journal, clock_origin=ORIGIN).run(protocol, line, values, seed=seed)
    return outcome, journal


async def test_demo_completes_with_results_in_range(tmp_path: Path) -> None:
    outcome, journal = await run_demo(tmp_path, seed=11)
    with journal:
        assert outcome.exit_status == "complete"
        records = journal.records(outcome.run_id)
        checks = {r.payload.check: r.payload for r in records if r.kind == "check_result"}
        (identity,) = [r.payload for r in records if isinstance(r.payload, rec.IdentityCheck)]
        assert identity.check == "chain of identity" and identity.passed is True
        assert checks["viability at harvest"].passed is True
        seeded = 1e9 * 50 / 100  # half the bag
        fold = checks["total viable cells"].value / seeded
        assert 2 < fold < 30  # a week of expansion, lag included
        records = journal.records(outcome.run_id)
        days = (records[-1].process_time_s - records[0].process_time_s) / 86400
        assert 7 <= days < 7.5
        assert verify_run(journal, outcome.run_id).intact


async def test_wrong_label_aborts_before_any_processing(
    db_location: Location, tmp_path: Path
) -> None:
    protocol = load_protocol(DEMO)
    values = protocol.params()
    materials = starting_materials(protocol.inputs, values)
    materials[0].label = "W999926ZZZZZZ"  # another patient's bag
    line, sim = build_sim_line(protocol.equipment(), clock=Clock(), seed=1, materials=materials)
    with Journal(db_location) as journal:
        outcome = await Runner(journal).run(protocol, line, values)
        assert outcome.exit_status == "aborted"
        commands = [r for r in journal.records(outcome.run_id) if r.kind == "instrument_command"]
        assert commands == []  # nothing was done to the material
    assert sim.world.containers["starting material bag"].volume_ml == 100.0


def test_same_seed_same_readings(tmp_path: Path) -> None:
    """Two runs, each on a fresh virtual loop, give the same values to the last digit."""

    async def one(folder: Path) -> list[object]:
        outcome, journal = await run_demo(folder, seed=5)
        with journal:
            return [
                r.payload.value
                for r in journal.records(outcome.run_id)
                if r.kind in ("check_result", "reading")
            ]

    options = {"loop_factory": virtual_loop_factory}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = anyio.run(one, tmp_path / "a", backend_options=options)
    second = anyio.run(one, tmp_path / "b", backend_options=options)
    assert first == second and len(first) > 10
