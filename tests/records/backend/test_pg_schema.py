"""The PostgreSQL schema is derived from the SQLite one: the same tables, columns (in the
same order) and indexes; the types mapped as the design says (golden test, §3.1)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from cellauto.records import Journal
from cellauto.records.backend import Location
from cellauto.records.backend.pg import PgBackend
from cellauto.records.backend.pg_schema import statements, translate

pytestmark = pytest.mark.postgresql

TYPES = {"INTEGER": "bigint", "REAL": "double precision", "TEXT": "text"}


def _sqlite_schema(path: Path) -> tuple[dict[str, list[tuple[str, str]]], set[str]]:
    Journal(path).close()
    conn = sqlite3.connect(path)
    try:
        tables = [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        columns = {
            table: [(row[1], row[2]) for row in conn.execute(f"PRAGMA table_info({table})")]
            for table in tables
        }
        indexes = {
            n
            for (n,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            )
        }
    finally:
        conn.close()
    return columns, indexes


def test_both_backends_have_the_same_tables_columns_and_indexes(
    tmp_path: Path, pg_location: Location
) -> None:
    lite_columns, lite_indexes = _sqlite_schema(tmp_path / "j.db")
    assert pg_location.url is not None
    conn = PgBackend(pg_location.url).connect(create=True, timeout_s=5.0)
    try:
        rows = conn.execute(
            "SELECT table_name, column_name, data_type, collation_name FROM"
            " information_schema.columns WHERE table_schema = current_schema()"
            " ORDER BY table_name, ordinal_position"
        ).fetchall()
        pg_indexes = {
            n
            for (n,) in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
                " AND indexname NOT LIKE '%_pkey' AND indexname NOT LIKE '%_key'"
            )
        }
    finally:
        conn.close()
    pg_columns: dict[str, list[tuple[str, str, str | None]]] = {}
    for table, column, kind, collation in rows:
        pg_columns.setdefault(table, []).append((column, kind, collation))
    assert set(pg_columns) == set(lite_columns)
    for table, columns in lite_columns.items():
        got = pg_columns[table]
        if table == "records":
            assert got[-1] == ("id", "bigint", None)  # the rowid: append order, last
            got = got[:-1]
        assert [c for c, _, _ in got] == [c for c, _ in columns], table
        for (column, lite_type), (_, kind, collation) in zip(columns, got, strict=True):
            if (table, column) == ("ledger_head", "id"):
                assert kind == "smallint"
                continue
            assert kind == TYPES[lite_type], (table, column)
            assert collation == ("C" if lite_type == "TEXT" else None), (table, column)
    assert pg_indexes == lite_indexes


def test_the_translation_is_mechanical() -> None:
    assert translate(
        "CREATE TABLE IF NOT EXISTS t (a TEXT PRIMARY KEY, b INTEGER, c REAL) WITHOUT ROWID"
    ) == (
        'CREATE TABLE IF NOT EXISTS t (a TEXT COLLATE "C" PRIMARY KEY, b BIGINT,'
        " c DOUBLE PRECISION)"
    )
    index = "CREATE INDEX IF NOT EXISTS i ON t (json_extract(body, '$.payload.x')) WHERE k = 'a'"
    assert translate(index) == index
    records = next(s for s in statements() if "TABLE IF NOT EXISTS records" in s)
    assert "id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY" in records
    assert records.count("NOT NULL") == 8
    assert all("WITHOUT ROWID" not in s for s in statements())


def test_the_compatibility_functions_answer_as_sqlite(pg_location: Location) -> None:
    lite = sqlite3.connect(":memory:")
    assert pg_location.url is not None
    conn = PgBackend(pg_location.url).connect(create=True, timeout_s=5.0)
    try:
        for sql, params in (
            ("SELECT json_extract(?, '$.payload.lot_id')", ('{"payload": {"lot_id": "L-1"}}',)),
            ("SELECT json_extract(?, '$.payload.none')", ('{"payload": {}}',)),
            ("SELECT instr(?, ?)", ("abcdef", "cd")),
            ("SELECT instr(?, ?)", ("abcdef", "x")),
            ("SELECT MAX(0, 5 - ?), MIN(?, 7)", (9, 3)),
            ("SELECT MAX(0, 5 - ?), MIN(?, 7)", (2, 8)),
            ("SELECT MAX(1, ?)", (None,)),
        ):
            assert conn.execute(sql, params).fetchone() == lite.execute(sql, params).fetchone()
        conn.execute(
            "INSERT INTO lot_uses VALUES ('r', 'u1', 'l', 5, 1, 0), ('r', 'u2', 'l', 7, 2, 0)"
        )
        assert conn.execute(
            "SELECT max(quantity_milli), min(run_seq) FROM lot_uses"
        ).fetchone() == (
            7,
            1,
        )  # one argument: still the aggregates
    finally:
        conn.close()
        lite.close()


def test_the_site_row_indexes_are_used_on_postgresql(pg_location: Location) -> None:
    from cellauto.records._schema import site_row_filter

    assert pg_location.url is not None
    conn = PgBackend(pg_location.url).connect(create=True, timeout_s=5.0)
    try:
        conn.execute("SET enable_seqscan = off")
        plan = conn.execute(
            f"EXPLAIN SELECT seq FROM site_records WHERE {site_row_filter('lots')}", ("L-1",)
        ).fetchall()
    finally:
        conn.close()
    assert "site_records_by_lot_id" in " ".join(line for (line,) in plan)
