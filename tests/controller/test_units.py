"""Binding runs to units of a pool (:mod:`cellauto.controller.units`), on the backend of
the pass: the least recently used free unit; none free, nothing bound (the run stays
queued); a resumed run gets its own unit back, never another; the claim checks the
ticket; the unit is free again when its run ended or its queue row was refused."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cellauto.clock import Clock
from cellauto.controller.units import RunUnits, unit_alive
from cellauto.errors import EquipmentError, JournalError
from cellauto.instruments import Bioreactor
from cellauto.instruments.base import Instrument
from cellauto.instruments.line import Line
from cellauto.protocols import load_protocol
from cellauto.records import Journal
from cellauto.records import asset_holds as table
from cellauto.records import backend as db
from cellauto.records import payloads as rec
from cellauto.records.backend import Conn, Location
from cellauto.sim import simulate
from cellauto.sim.line import SimLine
from cellauto.testing import journal_from, sqlite_allowed

RawDb = Callable[[Location], Conn]
DEMO = Path(__file__).resolve().parents[2] / "protocols" / "demo_expansion.py"
UNITS = ["BR-01", "BR-02", "BR-03"]


@pytest.fixture
def conn(db_location: Location, raw_db: RawDb) -> Iterator[Conn]:
    Journal(db_location).close()  # the schema
    connection = raw_db(db_location)
    yield connection
    connection.close()


async def _pool() -> dict[str, Instrument]:
    """Three simulated bioreactors (only their identities are read here)."""
    sim = SimLine(clock=Clock(), seed=1)
    sim.line_for({f"bioreactor@{unit}": Bioreactor for unit in UNITS})
    return {unit: sim.equipment[f"bioreactor@{unit}"] for unit in UNITS}


@pytest.fixture
def units() -> RunUnits:
    pool = asyncio.run(_pool())
    line = Line("pool-line", {}, pools={"bioreactor": pool})
    now = iter(range(1_000, 10**9, 1_000))
    return RunUnits(line, "c1", now_ns=lambda: next(now))


def _bind(conn: Conn, units: RunUnits, run_id: str) -> dict[str, str] | None:
    db.begin_write(conn)
    try:
        ok = units.bind(conn, run_id, ["bioreactor"])
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return units.of_run(conn, run_id, None) if ok else None


def _claim(conn: Conn, op: Callable[[Conn], None]) -> None:
    db.begin_write(conn)
    try:
        op(conn)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _started(units: RunUnits, unit: str) -> rec.RunStarted:
    """A run_started naming ``unit``'s bioreactor (only its instruments are read)."""
    ident = units.line.pools["bioreactor"][unit].identity
    began = rec.EquipmentIdentity(
        vendor=ident.vendor, model=ident.model, serial=ident.serial, firmware="1"
    )
    return rec.RunStarted.model_construct(instruments={"bioreactor": began})


def _open(conn: Conn) -> dict[str, str]:
    return {r.run_id: r.asset for r in table.holds(conn) if r.status == "granted"}


def test_the_demo_protocol_needs_the_pool(units: RunUnits) -> None:
    assert units.needs(load_protocol(DEMO)) == ["bioreactor"]
    assert units.needs(None) == []


def test_a_run_is_bound_to_the_least_recently_used_free_unit_or_stays_unbound(
    conn: Conn, units: RunUnits
) -> None:
    assert [_bind(conn, units, f"run-{n}") for n in range(3)] == [
        {"bioreactor": unit} for unit in UNITS
    ]
    assert _bind(conn, units, "run-late") is None  # every unit in use: nothing bound
    assert "run-late" not in _open(conn) and len(table.holds(conn)) == 3
    assert units.release(conn, "run-1") == ["BR-02"]
    assert units.release(conn, "run-0") == ["BR-01"]
    # BR-03 is in use; BR-02 has been free longest
    assert _bind(conn, units, "run-late") == {"bioreactor": "BR-02"}
    assert _bind(conn, units, "run-next") == {"bioreactor": "BR-01"}
    assert _bind(conn, units, "run-late") == {"bioreactor": "BR-02"}  # asked again: its own


def test_a_run_taken_again_after_its_controller_died_before_the_claim_keeps_its_unit(
    conn: Conn, units: RunUnits
) -> None:
    """Bound at its take, its controller dead before the claim, the row back in the
    queue: the next controller to take it binds it to the same unit."""
    _bind(conn, units, "run-a")
    assert _bind(conn, units, "run-b") == {"bioreactor": "BR-02"}
    other = RunUnits(units.line, "c2", now_ns=lambda: 5_000_000)
    assert _bind(conn, other, "run-c") == {"bioreactor": "BR-03"}
    assert _bind(conn, other, "run-b") == {"bioreactor": "BR-02"}
    _claim(conn, other.at_claim("run-b", {"bioreactor": "BR-02"}))
    assert _open(conn) == {"run-a": "BR-01", "run-b": "BR-02", "run-c": "BR-03"}


def test_a_resumed_run_gets_its_own_unit_back_never_another(conn: Conn, units: RunUnits) -> None:
    _bind(conn, units, "run-a")
    assert _bind(conn, units, "run-b") == {"bioreactor": "BR-02"}
    assert units.of_run(conn, "run-b", _started(units, "BR-02")) == {"bioreactor": "BR-02"}
    _claim(conn, units.at_claim("run-b", {"bioreactor": "BR-02"}))  # the ticket is its own
    with pytest.raises(JournalError, match="holds unit BR-02 of bioreactor, not BR-03"):
        _claim(conn, units.at_claim("run-b", {"bioreactor": "BR-03"}))
    # its ticket names BR-02 but it started on BR-03: refused, not resumed elsewhere
    with pytest.raises(EquipmentError, match="not resumed on another unit"):
        units.of_run(conn, "run-b", _started(units, "BR-03"))


def test_a_resumed_run_without_a_ticket_is_bound_again_to_the_unit_it_started_on(
    conn: Conn, units: RunUnits
) -> None:
    assert units.of_run(conn, "run-old", _started(units, "BR-03")) == {"bioreactor": "BR-03"}
    _claim(conn, units.at_claim("run-old", {"bioreactor": "BR-03"}))
    assert _open(conn) == {"run-old": "BR-03"}
    _bind(conn, units, "run-a")
    _bind(conn, units, "run-b")
    assert units.of_run(conn, "run-x", _started(units, "BR-01")) == {"bioreactor": "BR-01"}
    with pytest.raises(JournalError, match="unit BR-01 of bioreactor, which it started on"):
        _claim(conn, units.at_claim("run-x", {"bioreactor": "BR-01"}))  # run-a has it


def test_a_refused_run_frees_its_unit(conn: Conn, units: RunUnits) -> None:
    _bind(conn, units, "run-r")
    conn.execute(
        "INSERT INTO run_queue (run_id, protocol, version, source_sha256, params, line,"
        " priority, status, submitted_wall_ns, source_seq, source_hash)"
        " VALUES ('run-r', 'demo', '1', 'x', '{}', NULL, 0, 'refused', 0, 0, 'h')"
    )
    assert not unit_alive(conn)("run-r", 1)
    assert units.ended(conn, "run-r")
    for n in range(3):  # its unit is free again: the three are bound
        assert _bind(conn, units, f"run-{n}") is not None


def test_a_unit_of_an_ended_run_is_free_again(
    db_location: Location, raw_db: RawDb, units: RunUnits, tmp_path: Path
) -> None:
    with sqlite_allowed():
        ran = simulate(str(DEMO), seed=3, db=tmp_path / "template.db", patient="typical")
    journal_from(tmp_path / "template.db", db_location)
    conn = raw_db(db_location)
    try:
        ended = ran.records[0].run_id
        db.begin_write(conn)  # bound while it ran (a live ticket of BR-01)
        hold = table.HoldRequest("t-ended", "BR-01", ended, "c1", "the run's bioreactor", 1)
        table.request(conn, hold, lambda run, epoch: True, 1)
        conn.execute("COMMIT")
        assert _open(conn) == {ended: "BR-01"}
        assert not unit_alive(conn)(ended, 1)  # its run_ended is in the journal
        assert units.ended(conn, ended)
        taken = [_bind(conn, units, f"run-{n}") for n in range(3)]
        assert sorted(t["bioreactor"] for t in taken if t) == UNITS
    finally:
        conn.close()


def test_the_end_of_a_run_ends_every_ticket_it_has(conn: Conn, units: RunUnits) -> None:
    """Its unit, and a shared counter a step never let go of: the next in line gets it."""
    _bind(conn, units, "run-s")
    db.begin_write(conn)
    for ticket, run_id in (("t-1", "run-s"), ("t-2", "run-w")):
        hold = table.HoldRequest(ticket, "CNT-1", run_id, "c1", "count", 2_000)
        table.request(conn, hold, lambda run, epoch: True, 1)
    conn.execute("COMMIT")
    assert units.release(conn, "run-s", lambda c: lambda run, epoch: run != "run-s") == ["BR-01"]
    states = {(r.run_id, r.asset): r.status for r in table.holds(conn)}
    assert states == {
        ("run-s", "BR-01"): "released",
        ("run-s", "CNT-1"): "released",
        ("run-w", "CNT-1"): "granted",
    }
    assert units.release(conn, "run-s") == []  # nothing open: nothing written
