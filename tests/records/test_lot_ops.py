"""ConsumeLot and VoidUse: idempotent, never refusing, reporting the lot after the commit."""

from __future__ import annotations

import pytest

from cellauto.records._lot_ops import ConsumeLot, LotAfter, VoidUse
from cellauto.records.backend import Location
from cellauto.testing import raw_connection
from tests.protocols.materials_kit import define, file_site, lot, reject
from tests.records.site_factory import rows


def _apply(path: Location, op: ConsumeLot | VoidUse) -> object:
    conn = raw_connection(path)
    try:
        conn.execute("BEGIN")
        value = op.apply(conn).value
        conn.execute("COMMIT")
        return value
    finally:
        conn.close()


@pytest.fixture
def path(db_location: Location) -> Location:
    path = db_location
    file_site(path, [define(), *lot("il2/L1", quantity_ml=10.0)])
    return path


def test_a_use_counted_twice_decrements_once(path: Location) -> None:
    first = _apply(path, ConsumeLot("run-1", "dose 1", "il2/L1", 2000, 7))
    again = _apply(path, ConsumeLot("run-1", "dose 1", "il2/L1", 2000, 9))
    assert first == LotAfter(True, "released", first.expires_on, 8000)  # type: ignore[union-attr]
    assert again == LotAfter(False, "released", first.expires_on, 8000)  # type: ignore[union-attr]
    assert rows(path, "SELECT run_seq, quantity_milli FROM lot_uses") == [(7, 2000)]
    assert rows(path, "SELECT remaining_milli FROM lots") == [(8000,)]


def test_consume_never_refuses_and_shows_the_rejection(path: Location) -> None:
    file_site(path, [reject("il2/L1")])
    after = _apply(path, ConsumeLot("run-1", "dose 1", "il2/L1", 12_000, 3))
    assert isinstance(after, LotAfter)
    assert (after.inserted, after.status, after.remaining_milli) == (True, "rejected", -2000)


def test_void_gives_back_once_and_a_retried_use_counts_again(path: Location) -> None:
    _apply(path, ConsumeLot("run-1", "dose 1", "il2/L1", 2000, 3))
    assert _apply(path, VoidUse("run-1", "dose 1", "il2/L1", 2000)) is True
    assert _apply(path, VoidUse("run-1", "dose 1", "il2/L1", 2000)) is False
    assert rows(path, "SELECT remaining_milli FROM lots") == [(10_000,)]
    assert rows(path, "SELECT voided FROM lot_uses") == [(1,)]
    retried = _apply(path, ConsumeLot("run-1", "dose 1", "il2/L1", 2000, 8))
    assert isinstance(retried, LotAfter) and retried.inserted
    assert rows(path, "SELECT voided, run_seq FROM lot_uses") == [(0, 8)]
    assert rows(path, "SELECT remaining_milli FROM lots") == [(8000,)]


def test_a_simulated_runs_use_writes_only_the_files_row(path: Location) -> None:
    after = _apply(path, ConsumeLot("run-1", "dose 1", "SIM-il-2-1", 2000, 3, site_side=False))
    assert after == LotAfter(True, None, None, None)
    assert rows(path, "SELECT lot_id FROM lot_uses") == [("SIM-il-2-1",)]
    assert rows(path, "SELECT remaining_milli FROM lots") == [(10_000,)]
