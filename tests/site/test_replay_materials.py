"""``verify`` of materials, lots and equipment: an edited row is named, and each lot's
remaining quantity must be what the site records and the runs' uses say.

The runs' ``material_consumed`` / ``material_use_voided`` records and their ``lot_uses``
rows are written here by hand, as the run side's commit writes them (the run chains
themselves are not what these tests check: only the site report is read).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

import orjson
import pytest

from cellauto.records import Journal, verify_journal
from cellauto.records.backend import Conn
from cellauto.records.material_payloads import LotSnapshot, MaterialConsumed, MaterialUseVoided
from cellauto.records.refs import SiteRef
from cellauto.records.site_payloads_mat import (
    EquipmentAdded,
    MaterialKindName,
    Storage,
    Unit,
)
from cellauto.site.materials import adjust_lot, define_material, receive_lot, release_lot
from cellauto.site.replay import replay_problem
from cellauto.testing import raw_connection

from .conftest import Site

VECTOR = "CAR lentiviral vector"
LOT = "car-lentiviral-vector/L1"


def _verify(site: Site) -> tuple[bool, str | None]:
    with Journal(site.store.location, create=False) as journal:
        report = verify_journal(journal, site_replay=replay_problem)
    return report.site.intact, report.site.reason


@contextmanager
def _file(site: Site) -> Iterator[Conn]:
    """The journal file opened behind the store's back (as an editor would)."""
    conn = raw_connection(site.store.location)
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture
def stocked(site: Site) -> Site:
    """A vector lot of 12.5 mL received by alice, released by bob, 0.5 mL spilled; a
    bioreactor in the registry."""
    define_material(
        site.store,
        site.sign_in("carol"),
        VECTOR,
        material_kind=MaterialKindName.VECTOR,
        unit=Unit.ML,
        storage=Storage.ULT,
    )
    receive_lot(
        site.store,
        site.sign_in("alice"),
        VECTOR,
        supplier="Vectors Inc",
        supplier_lot="L1",
        expires_on=date(2099, 1, 31),
        quantity_milli=12_500,
        received_on=date(2026, 1, 1),
    )
    release_lot(site.store, site.sign_in("bob"), LOT)
    adjust_lot(site.store, site.sign_in("carol"), LOT, delta_milli=-500, cause="spill")
    carol = site.sign_in("carol")
    with site.store.transaction() as tx:
        tx.append(
            EquipmentAdded(
                by="carol",
                terminal=carol.terminal,
                asset="BR-001",
                interface="Bioreactor",
                vendor="Simulated",
                model="SimBioreactor",
                serial="BR-7730",
                calibration_due=date(2099, 6, 30),
            )
        )
    return site


def _snapshot(site: Site, lot_id: str = LOT) -> LotSnapshot:
    with site.store.reading() as conn:
        seq, digest = conn.execute(
            "SELECT source_seq, source_hash FROM lots WHERE lot_id = ?", (lot_id,)
        ).fetchone()
    return LotSnapshot(
        lot_id=lot_id,
        material=VECTOR,
        supplier_lot="L1",
        expires_on=date(2099, 1, 31),
        status="released",
        site=SiteRef(seq=seq, hash=digest),
    )


def _record(conn: Conn, run_id: str, seq: int, payload: object) -> None:
    kind = payload.kind.value  # type: ignore[attr-defined]
    body = orjson.dumps({"payload": payload.model_dump(mode="json")}).decode()  # type: ignore[attr-defined]
    conn.execute(
        "INSERT INTO records (run_id, seq, kind, process_time_s, wall_time_ns, body,"
        " prev_hash, hash) VALUES (?, ?, ?, 0, 0, ?, ?, ?)",
        (run_id, seq, kind, body, "0" * 64, "0" * 64),
    )


def _consume(
    site: Site, run_id: str, seq: int, use_key: str, quantity_milli: int, lot_id: str = LOT
) -> None:
    """What the run side's commit writes: the record, the ``lot_uses`` row, the decrement."""
    lot = (
        _snapshot(site, lot_id)
        if lot_id == LOT
        else _snapshot(site).model_copy(update={"lot_id": lot_id, "site": None})
    )
    used = MaterialConsumed(
        step="transduce",
        use_key=use_key,
        material=VECTOR,
        lot=lot,
        quantity_milli=quantity_milli,
        how_chosen="assigned",
        into="culture bag",
        amount_basis="per batch",
    )
    with _file(site) as conn:
        _record(conn, run_id, seq, used)
        conn.execute(
            "INSERT INTO lot_uses (run_id, use_key, lot_id, quantity_milli, run_seq)"
            " VALUES (?, ?, ?, ?, ?)",
            (run_id, use_key, lot_id, quantity_milli, seq),
        )
        conn.execute(
            "UPDATE lots SET remaining_milli = remaining_milli - ? WHERE lot_id = ?",
            (quantity_milli, lot_id),
        )


def _void(site: Site, run_id: str, seq: int, use_key: str, quantity_milli: int) -> None:
    voided = MaterialUseVoided(
        step="transduce",
        use_key=use_key,
        lot_id=LOT,
        quantity_milli=quantity_milli,
        cause="lot rejected meanwhile",
    )
    with _file(site) as conn:
        _record(conn, run_id, seq, voided)
        conn.execute(
            "UPDATE lot_uses SET voided = 1 WHERE run_id = ? AND use_key = ?", (run_id, use_key)
        )
        conn.execute(
            "UPDATE lots SET remaining_milli = remaining_milli + ? WHERE lot_id = ?",
            (quantity_milli, LOT),
        )


def test_a_clean_site_verifies_intact(stocked: Site) -> None:
    assert _verify(stocked) == (True, None)


def test_uses_and_voids_that_agree_verify_intact(stocked: Site) -> None:
    _consume(stocked, "run-a", 5, "vector", 3_000)
    _consume(stocked, "run-b", 7, "vector", 2_000)
    _void(stocked, "run-b", 8, "vector", 2_000)
    _consume(stocked, "run-b", 9, "vector again", 1_000)
    assert _verify(stocked) == (True, None)
    with _file(stocked) as conn:
        (remaining,) = conn.execute(
            "SELECT remaining_milli FROM lots WHERE lot_id = ?", (LOT,)
        ).fetchone()
    assert remaining == 12_500 - 500 - 3_000 - 1_000


def test_an_edited_status_is_named(stocked: Site) -> None:
    with _file(stocked) as conn:
        conn.execute("UPDATE lots SET status = 'quarantine' WHERE lot_id = ?", (LOT,))
    intact, reason = _verify(stocked)
    assert not intact
    assert str(reason).startswith(f"lots table edited: row {LOT!r} status 'quarantine' but site")
    assert "says 'released'" in str(reason)


def test_an_edited_expiry_is_named(stocked: Site) -> None:
    with _file(stocked) as conn:
        conn.execute("UPDATE lots SET expires_on = '2199-01-31' WHERE lot_id = ?", (LOT,))
    intact, reason = _verify(stocked)
    assert not intact
    assert f"lots table edited: row {LOT!r} expires_on '2199-01-31'" in str(reason)


def test_an_edited_remaining_quantity_is_named(stocked: Site) -> None:
    _consume(stocked, "run-a", 5, "vector", 3_000)
    with _file(stocked) as conn:
        conn.execute("UPDATE lots SET remaining_milli = 12000 WHERE lot_id = ?", (LOT,))
    intact, reason = _verify(stocked)
    assert not intact
    assert str(reason).startswith(
        f"lots table edited: row {LOT!r} remaining_milli 12000 but the records say 9000"
    )
    assert "3000 used by 1 run record(s)" in str(reason)


def test_a_reserved_quantity_is_not_compared(stocked: Site) -> None:
    with _file(stocked) as conn:
        conn.execute("UPDATE lots SET reserved_milli = 4000 WHERE lot_id = ?", (LOT,))
    assert _verify(stocked) == (True, None)


def test_a_deleted_use_row_is_named(stocked: Site) -> None:
    _consume(stocked, "run-a", 5, "vector", 3_000)
    with _file(stocked) as conn:
        conn.execute("DELETE FROM lot_uses")
        conn.execute("UPDATE lots SET remaining_milli = remaining_milli + 3000")
    intact, reason = _verify(stocked)
    assert not intact
    assert "lot_uses table edited: row run-a/'vector' is missing but run run-a record 5" in str(
        reason
    )


def test_a_use_voided_in_the_table_only_is_named(stocked: Site) -> None:
    _consume(stocked, "run-a", 5, "vector", 3_000)
    with _file(stocked) as conn:
        conn.execute("UPDATE lot_uses SET voided = 1")
        conn.execute("UPDATE lots SET remaining_milli = remaining_milli + 3000")
    intact, reason = _verify(stocked)
    assert not intact and "lot_uses table edited: row run-a/'vector' voided 1" in str(reason)


def test_a_void_without_its_use_is_named(stocked: Site) -> None:
    with _file(stocked) as conn:
        _record(
            conn,
            "run-a",
            4,
            MaterialUseVoided(
                step="s", use_key="ghost", lot_id=LOT, quantity_milli=1_000, cause="x"
            ),
        )
    intact, reason = _verify(stocked)
    assert not intact and "voids use 'ghost'" in str(reason)


def test_uses_of_lots_the_site_does_not_know_are_left_alone(stocked: Site) -> None:
    """A simulated run's rows (SIM- lots of its own site) in the file's lot_uses."""
    _consume(stocked, "sim-run", 5, "vector", 3_000, lot_id="SIM-vector-1")
    assert _verify(stocked) == (True, None)


@pytest.mark.parametrize(
    ("sql", "named"),
    [
        ("UPDATE equipment SET status = 'in_service'", "equipment table edited: row 'BR-001'"),
        ("UPDATE materials SET unit = 'µg'", f"materials table edited: row {VECTOR!r} unit"),
        ("DELETE FROM equipment", "equipment table edited: row 'BR-001' is missing"),
        (
            "INSERT INTO lots SELECT 'x/forged', material, supplier, supplier_lot, received_on,"
            " expires_on, status, received_by, received_milli, remaining_milli,"
            " reserved_milli, attributes, source_seq, source_hash FROM lots",
            "lots table edited: row 'x/forged' is there but no site record created it",
        ),
    ],
)
def test_other_edits_are_named(stocked: Site, sql: str, named: str) -> None:
    with _file(stocked) as conn:
        conn.execute(sql)
    intact, reason = _verify(stocked)
    assert not intact and named in str(reason)
