"""Pools of units (design of issue 15, §5.1): a run is bound to any free unit of a pool,
keeps it for its life (also across a takeover), and a unit of a dead run is free again.
On the backend of the pass; concurrent takers on PostgreSQL get distinct units."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from cellauto.records import Journal
from cellauto.records import asset_holds as table
from cellauto.records import backend as db
from cellauto.records.asset_units import take_unit, unit_of
from cellauto.records.backend import Conn, Location

RawDb = Callable[[Location], Conn]
UNITS = [f"BR-{n:02d}" for n in range(1, 21)]


@pytest.fixture
def conn(db_location: Location, raw_db: RawDb) -> Iterator[Conn]:
    Journal(db_location).close()  # the schema
    connection = raw_db(db_location)
    yield connection
    connection.close()


def _take(
    conn: Conn, run_id: str, *, epoch: int = 1, dead: frozenset[str] = frozenset()
) -> str | None:
    hold = table.HoldRequest(
        ticket=f"{run_id}:{epoch}:unit", asset="", run_id=run_id, controller="c1",
        purpose="the run's bioreactor", now_ns=1_000,
    )  # fmt: skip
    db.begin_write(conn)  # take_unit takes the ASSET lock itself
    try:
        unit = take_unit(conn, UNITS, hold, lambda run, _: run not in dead, epoch)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return unit


def test_runs_are_bound_to_free_units_in_order_until_none_is_left(conn: Conn) -> None:
    taken = [_take(conn, f"run-{n}") for n in range(20)]
    assert taken == UNITS
    assert _take(conn, "run-20") is None  # every unit in use
    assert _take(conn, "run-3") == "BR-04"  # asked again: the unit it has
    assert unit_of(conn, "run-3", UNITS) == "BR-04"
    [row] = table.holds(conn, run_id="run-3")
    assert row.status == "granted" and row.asset == "BR-04"


def test_a_unit_is_free_again_when_its_run_ends_or_has_no_live_controller(conn: Conn) -> None:
    assert [_take(conn, f"run-{n}") for n in range(3)] == UNITS[:3]
    db.begin_write(conn, db.Lock.ASSET)
    table.release_run(conn, "run-0", 2_000, lambda run, _: True)
    conn.execute("COMMIT")
    assert _take(conn, "run-new") == "BR-01"  # the ended run's unit
    assert _take(conn, "run-other", dead=frozenset({"run-1"})) == "BR-02"
    [ended] = table.holds(conn, run_id="run-1")
    assert ended.status == "released" and ended.note is not None


def test_a_run_taken_over_under_a_new_epoch_keeps_its_unit(conn: Conn) -> None:
    assert _take(conn, "run-a") == "BR-01"
    assert _take(conn, "run-b") == "BR-02"
    # its new controller asks under epoch 2 (the old epoch is dead): the same unit
    assert _take(conn, "run-b", epoch=2, dead=frozenset({"run-b"})) == "BR-02"
    [row] = table.holds(conn, run_id="run-b")
    assert row.epoch == 2 and row.status == "granted"


@pytest.mark.postgresql
def test_controllers_taking_units_at_once_get_distinct_units(
    pg_location: Location, raw_db: RawDb
) -> None:
    Journal(pg_location).close()
    conns = [raw_db(pg_location) for _ in range(8)]
    start = threading.Barrier(len(conns))
    taken: dict[str, str | None] = {}

    def controller(number: int) -> None:
        conn = conns[number]
        start.wait()
        for k in range(3):
            run_id = f"run-{number}-{k}"
            taken[run_id] = _take(conn, run_id)

    threads = [threading.Thread(target=controller, args=(n,)) for n in range(len(conns))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for conn in conns:
        conn.close()
    units = [unit for unit in taken.values() if unit is not None]
    assert len(units) == 20 and sorted(units) == UNITS  # each unit bound once
    assert sum(unit is None for unit in taken.values()) == 4
