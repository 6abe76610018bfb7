"""``cellauto copy`` between SQLite and PostgreSQL, and ``cellauto db init``: the copy
reads as its source (same ledger head, runs and run heads, projections), both ways; what
cannot be copied safely is refused with nothing written."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from cellauto.cli import main
from cellauto.errors import JournalError
from cellauto.records import Journal, RecordKind
from cellauto.records import backend as db
from cellauto.records.backend import Location
from cellauto.records.copy import copy_journal, journal_tables
from cellauto.records.site_payloads_mat import (
    LotAdjusted,
    LotReceived,
    LotReleased,
    MaterialDefined,
    MaterialKindName,
    Storage,
    Unit,
)
from cellauto.sim.simulate import simulate
from cellauto.site.replay import replay_problem
from cellauto.site.store import open_site_store
from tests.records.factory import payload_of
from tests.records.site_factory import TERMINAL

pytestmark = pytest.mark.postgresql

DEMO = Path(__file__).resolve().parents[2] / "protocols" / "demo_expansion.py"
WHO = {"by": "sup", "reason": "test", "terminal": TERMINAL}


def _source(path: Path) -> Path:
    """A journal file with a simulated batch, a site chain and its projections (lots)."""
    simulate(DEMO, db=path, seed=3)
    with open_site_store(path, create=True) as store, store.transaction() as tx:
        tx.append(
            MaterialDefined(
                **WHO,
                material="CAR lentiviral vector",
                material_kind=MaterialKindName.VECTOR,
                unit=Unit.ML,
                storage=Storage.ULT,
                attributes=["titer_tu_per_ml"],
            )
        )
        tx.append(
            LotReceived(
                **WHO,
                lot_id="v/L1",
                material="CAR lentiviral vector",
                supplier="Vectors Inc",
                supplier_lot="L1",
                received_on=date(2026, 12, 1),
                expires_on=date(2027, 1, 31),
                quantity_milli=12_500,
                attributes={"titer_tu_per_ml": 1.0e8},
            )
        )
        tx.append(LotReleased(**{**WHO, "by": "qa"}, lot_id="v/L1"))
        tx.append(LotAdjusted(**WHO, lot_id="v/L1", delta_milli=-500, cause="spill"))
    return path


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return _source(tmp_path / "site.db")


def _rows(location: Location, table: str) -> list[tuple[object, ...]]:
    backend = db.open_backend(location)
    conn = backend.connect(create=False, timeout_s=5.0)
    try:
        columns = [c[0] for c in conn.execute(f"SELECT * FROM {table} LIMIT 0").description]
        listed = ", ".join(c for c in columns if c != "id")
        return [tuple(r) for r in conn.execute(f"SELECT {listed} FROM {table} ORDER BY 1, 2")]
    finally:
        conn.close()


def _append_order(location: Location) -> list[tuple[str, int]]:
    conn = db.open_backend(location).connect(create=False, timeout_s=5.0)
    order = "id" if location.is_postgresql else "rowid"
    try:
        return [tuple(r) for r in conn.execute(f"SELECT run_id, seq FROM records ORDER BY {order}")]
    finally:
        conn.close()


def test_a_copy_to_postgresql_and_back_reads_as_its_source(
    source: Path, pg_location: Location, tmp_path: Path
) -> None:
    there = copy_journal(source, pg_location, site_replay=replay_problem)
    assert there.same, there.differences
    assert there.destination_report is not None and there.destination_report.intact
    assert there.source_report is not None
    head = there.source_report.ledger.head_hash
    assert head is not None and there.destination_report.ledger.head_hash == head
    assert there.rows["records"] > 100 and there.rows["site_records"] == 4
    back_at = Location.parse(tmp_path / "back.db")
    back = copy_journal(pg_location, back_at, site_replay=replay_problem)
    assert back.same, back.differences
    assert back.destination_report is not None
    assert back.destination_report.ledger.head_hash == head
    source_at = Location.parse(source)
    for table in journal_tables():  # every row of every table, byte for byte
        assert _rows(back_at, table) == _rows(source_at, table) == _rows(pg_location, table)
    assert _append_order(pg_location) == _append_order(source_at) == _append_order(back_at)


def test_numbered_rows_number_on_after_a_copy(source: Path, pg_location: Location) -> None:
    def queue(conn: db.Conn, run_id: str) -> None:
        conn.execute(
            "INSERT INTO run_queue (run_id, protocol, version, source_sha256, params,"
            " priority, status, submitted_wall_ns, source_seq, source_hash)"
            " VALUES (?, 'p.py', '1', 'x', '{}', 0, 'queued', 1, 1, 'h')",
            (run_id,),
        )

    conn = db.open_backend(source).connect(create=False, timeout_s=5.0)
    queue(conn, "r1")
    queue(conn, "r2")
    conn.close()
    assert copy_journal(source, pg_location).rows["run_queue"] == 2
    conn = db.open_backend(pg_location).connect(create=False, timeout_s=5.0)
    try:
        queue(conn, "r3")
        numbers = conn.execute("SELECT queue_seq FROM run_queue ORDER BY queue_seq").fetchall()
    finally:
        conn.close()
    assert numbers == [(1,), (2,), (3,)]


def test_the_cli_inits_copies_and_prints_both_heads(
    source: Path, pg_location: Location, capsys: pytest.CaptureFixture[str]
) -> None:
    url = str(pg_location.url)
    assert main(["db", "init", "--db", url]) == 0
    assert "schema version" in capsys.readouterr().out
    assert main(["copy", "--from", str(source), "--to", url]) == 0
    out = capsys.readouterr().out
    heads = [
        line.split(" head ")[1].split(";")[0] for line in out.splitlines() if "ledger:" in line
    ]
    assert len(heads) == 2 and heads[0] == heads[1], out
    assert main(["verify", "--db", str(source)]) == 0
    # a second copy into it is refused: it holds a journal now, left as it is
    before = _rows(pg_location, "records")
    assert main(["copy", "--from", str(source), "--to", url]) == 1
    assert "holds a journal already" in capsys.readouterr().err
    assert _rows(pg_location, "records") == before


def test_db_init_makes_an_sqlite_file_too_and_leaves_a_journal_as_it_is(
    tmp_path: Path, source: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "new.db"
    assert main(["db", "init", "--db", str(path)]) == 0 and path.is_file()
    assert main(["db", "init", "--db", str(source)]) == 0
    assert "1 runs" in capsys.readouterr().out


def test_a_source_that_does_not_verify_is_refused_unless_unverified(
    source: Path, pg_location_factory: object
) -> None:
    import sqlite3

    conn = sqlite3.connect(source, isolation_level=None)
    assert conn.execute("UPDATE records SET kind = 'alarm' WHERE seq = 3").rowcount == 1
    conn.close()
    first = pg_location_factory()  # type: ignore[operator]
    with pytest.raises(JournalError, match=r"does not verify.*nothing was copied"):
        copy_journal(source, first)
    assert _rows(first, "records") == []
    copied = copy_journal(source, pg_location_factory(), unverified=True)  # type: ignore[operator]
    assert copied.unverified and copied.same  # the same evidence, equally broken


def test_a_running_run_is_refused_unless_allowed(tmp_path: Path, pg_location: Location) -> None:
    path = tmp_path / "running.db"
    with Journal(path) as journal:
        run = journal.begin_run("run-live", lambda: 0.0)
        run.append(payload_of(RecordKind.READING, {"i": 0}))
        journal.flush()
        with pytest.raises(JournalError, match=r"being executed by.*--allow-running"):
            copy_journal(path, pg_location)
        assert _rows(pg_location, "records") == []
        copied = copy_journal(path, pg_location, allow_running=True)
        assert copied.rows["records"] == 1


def test_a_failed_copy_leaves_the_destination_empty(
    source: Path, pg_location: Location, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cellauto.records import copy as copy_module

    real = copy_module._copy_table

    def failing(src, dst, table, columns, batch_rows):  # type: ignore[no-untyped-def]
        copied = real(src, dst, table, columns, batch_rows)
        if table == "site_records":  # after records and the ledger went in
            raise OSError("disk full")
        return copied

    monkeypatch.setattr(copy_module, "_copy_table", failing)
    with pytest.raises(OSError, match="disk full"):
        copy_journal(source, pg_location, batch_rows=7)
    for table in ("records", "ledger", "site_records", "lots"):
        assert _rows(pg_location, table) == []


def test_postgresql_to_postgresql_in_small_batches(
    source: Path, pg_location_factory: object
) -> None:
    first, second = pg_location_factory(), pg_location_factory()  # type: ignore[operator]
    assert copy_journal(source, first).same
    copied = copy_journal(first, second, batch_rows=7, site_replay=replay_problem)
    assert copied.same, copied.differences
    assert _append_order(first) == _append_order(second)
    with pytest.raises(JournalError, match="both the source and the destination"):
        copy_journal(first, first)
