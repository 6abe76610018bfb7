"""Small site records and journal files of older schema versions, for the site tests."""

from __future__ import annotations

from pathlib import Path

from cellauto.records import Journal, RecordKind
from cellauto.records import backend as db
from cellauto.records.backend import Location
from cellauto.records.copy import journal_tables
from cellauto.records.site_payloads import PolicySet, SitePolicy, Terminal
from cellauto.testing import raw_connection
from tests.records.conftest import StepClock
from tests.records.factory import payload_of

TERMINAL = Terminal(host="bench-1", pid=4242, tty="pts/3", os_user="cellauto")

V4_TABLES = ("site_records", "accounts", "credentials", "training", "tasks", "run_requests")
V5_TABLES = ("materials", "lots", "lot_reservations", "lot_uses", "equipment", "containers")
V6_TABLES = ("deviations", "qc_results", "lims_schemas", "qc_imports", "dispositions")
V7_TABLES = ("alarm_acks",)
V8_TABLES = ("controllers", "run_queue", "asset_holds")


def policy(min_password_length: int = 12, by: str = "admin") -> PolicySet:
    """A tiny site record (no Argon2 needed): the site policy set."""
    return PolicySet(
        by=by,
        reason="test",
        terminal=TERMINAL,
        old=None,
        new=SitePolicy(min_password_length=min_password_length),
    )


def files_of(path: Path) -> dict[str, bytes]:
    """The journal's database and WAL bytes (the shared-memory index is not data)."""
    files = (path, path.with_name(path.name + "-wal"))
    return {p.name: p.read_bytes() for p in files if p.exists()}


def rows(location: Location, sql: str) -> list[tuple[object, ...]]:
    """The rows ``sql`` reads from the journal at ``location`` (either backend)."""
    conn = raw_connection(location)
    try:
        return [tuple(row) for row in conn.execute(sql)]
    finally:
        conn.close()


def stored_state(location: Location) -> dict[str, object]:
    """What the journal holds, to compare before and after something that must not write:
    on SQLite the files' bytes, on PostgreSQL every row of every table."""
    if not location.is_postgresql:
        return dict(files_of(location.sqlite_path()))
    conn = raw_connection(location)
    try:
        return {
            table: sorted(map(tuple, conn.execute(f"SELECT * FROM {table}").fetchall()), key=repr)
            for table in journal_tables()
        }
    finally:
        conn.close()


def sealed_run(journal: Journal, run_id: str, records: int = 3) -> None:
    run = journal.begin_run(run_id, StepClock())
    run.append(payload_of(RecordKind.RUN_STARTED, {"run_id": run_id}))
    for value in range(records - 1):
        run.append(payload_of(RecordKind.READING, {"value": value}))
    run.seal()


def old_journal(path: Path, version: int) -> Path:
    """A journal of schema version 2 to 7 holding one sealed run ``old``.

    Written by this cellauto, then its tables cut back to those of that version (the
    DDL of every other table is unchanged since), and its version set; checkpointed, so
    the file alone is the journal.
    """
    with Journal(path) as journal:
        sealed_run(journal, "old")
    conn = raw_connection(path)
    try:
        conn.execute("BEGIN")
        dropped = {
            7: V8_TABLES,
            6: (*V7_TABLES, *V8_TABLES),
            5: (*V6_TABLES, *V7_TABLES, *V8_TABLES),
            4: (*V5_TABLES, *V6_TABLES, *V7_TABLES, *V8_TABLES),
        }.get(version, (*V4_TABLES, *V5_TABLES, *V6_TABLES, *V7_TABLES, *V8_TABLES))
        for table in dropped:
            conn.execute(f"DROP TABLE {table}")
        if version > 2:
            conn.execute("ALTER TABLE run_owners DROP COLUMN controller")
        if version < 7:
            conn.execute("DROP INDEX records_alarms")
        if version < 6:
            conn.execute("DROP INDEX records_deviations")
        if version == 2:
            conn.execute("DROP TABLE run_owners")
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return path


def tables_of(path: Path | Location) -> set[str]:
    """The journal's tables and indexes."""
    conn = raw_connection(path)
    try:
        return db.tables(conn)
    finally:
        conn.close()


def schema_version(path: Path) -> str:
    conn = raw_connection(path)
    try:
        return str(
            conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
        )
    finally:
        conn.close()
