"""Schema versions: new files are version 5 with the site and materials tables; version 2,
3 and 4 files are read as they are and become version 5 on their next run claim or first
site write."""

from __future__ import annotations

from pathlib import Path

import pytest

from cellauto.cli import main
from cellauto.errors import JournalOpenError
from cellauto.records import Journal, verify_journal
from cellauto.records._schema import READABLE_VERSIONS, SCHEMA_VERSION
from cellauto.records.backend import Location
from cellauto.records.site_chain import read_site_records
from cellauto.records.site_store import SiteStore
from cellauto.testing import raw_connection
from tests.records.site_factory import (
    V4_TABLES,
    V5_TABLES,
    V6_TABLES,
    V7_TABLES,
    V8_TABLES,
    files_of,
    old_journal,
    policy,
    schema_version,
    sealed_run,
    tables_of,
)


def test_a_new_journal_is_version_8_with_every_table(journal_path: Location) -> None:
    with Journal(journal_path):
        pass
    assert SCHEMA_VERSION == 8 and READABLE_VERSIONS == ("2", "3", "4", "5", "6", "7", "8")
    assert schema_version(journal_path) == "8"
    assert {
        *V4_TABLES,
        *V5_TABLES,
        *V6_TABLES,
        *V7_TABLES,
        *V8_TABLES,
        "run_owners",
        "records",
        "ledger",
        "ledger_head",
        "meta",
    } <= tables_of(journal_path)


@pytest.mark.parametrize("version", [2, 3, 4, 5, 6, 7])
def test_an_old_journal_is_read_and_verified_without_a_write(tmp_path: Path, version: int) -> None:
    path = old_journal(tmp_path / "old.db", version)
    before = files_of(path)
    with Journal(path, create=False) as journal:
        assert [s.run_id for s in journal.runs()] == ["old"]
        assert len(journal.records("old")) == 3
        report = verify_journal(journal)
        assert report.intact, report
        assert report.site.records == 0
    with SiteStore(path) as store, store.reading() as conn:
        assert list(read_site_records(conn)) == []
    for command in (["show", "old"], ["verify"], ["runs"]):
        assert main([*command, "--db", str(path)]) == 0
    assert files_of(path) == before


@pytest.mark.parametrize("version", [2, 3, 4, 5, 6, 7])
def test_an_old_journal_becomes_version_8_on_its_first_site_write(
    tmp_path: Path, version: int
) -> None:
    path = old_journal(tmp_path / "old.db", version)
    with SiteStore(path) as store, store.transaction() as tx:
        tx.append(policy())
    assert schema_version(path) == "8"
    assert {*V4_TABLES, *V5_TABLES, *V6_TABLES, *V7_TABLES, *V8_TABLES, "run_owners"} <= tables_of(
        path
    )
    assert "controller" in owner_columns(path)
    with Journal(path, create=False) as journal:
        report = verify_journal(journal)
    assert report.intact, report
    assert report.site.records == 1


@pytest.mark.parametrize("version", [2, 3, 4, 5, 6, 7])
def test_an_old_journal_becomes_version_8_on_its_next_claim(tmp_path: Path, version: int) -> None:
    path = old_journal(tmp_path / "old.db", version)
    with Journal(path) as journal:
        sealed_run(journal, "new")
    assert schema_version(path) == "8"
    assert {*V4_TABLES, *V5_TABLES, *V6_TABLES, *V7_TABLES, *V8_TABLES, "run_owners"} <= tables_of(
        path
    )
    assert "controller" in owner_columns(path)
    with SiteStore(path) as store, store.transaction() as tx:
        tx.append(policy())
    with Journal(path, create=False) as journal:
        assert verify_journal(journal).intact


def test_a_failed_site_write_leaves_an_old_journal_at_its_version(tmp_path: Path) -> None:
    path = old_journal(tmp_path / "old.db", 3)
    with SiteStore(path) as store, pytest.raises(ValueError), store.transaction() as tx:
        tx.append(policy())
        raise ValueError("changed my mind")
    assert schema_version(path) == "3"
    assert not {*V4_TABLES, *V5_TABLES} & tables_of(path)


def test_a_newer_journal_is_refused(journal_path: Location) -> None:
    with Journal(journal_path):
        pass
    conn = raw_connection(journal_path)
    conn.execute("UPDATE meta SET value = '9' WHERE key = 'schema_version'")
    conn.close()
    with pytest.raises(JournalOpenError, match=r"schema version 9.*2, 3, 4, 5, 6, 7, 8"):
        SiteStore(journal_path)
    with pytest.raises(JournalOpenError, match="schema version 9"):
        Journal(journal_path, create=False)


def owner_columns(path: Path) -> list[str]:
    conn = raw_connection(path)
    try:
        return [row[1] for row in conn.execute("PRAGMA table_info(run_owners)")]
    finally:
        conn.close()


def test_a_version_7_journal_becomes_version_8_keeping_its_owners(tmp_path: Path) -> None:
    """The migration 7 → 8: the new tables, and run_owners.controller added to the rows
    already there (NULL: claims of cellauto run), in the transaction of the next claim."""
    path = old_journal(tmp_path / "old.db", 7)
    assert schema_version(path) == "7" and "controller" not in owner_columns(path)
    assert not set(V8_TABLES) & tables_of(path)
    before = files_of(path)
    with Journal(path, create=False) as journal:  # reading: nothing written
        assert verify_journal(journal).intact
    assert files_of(path) == before
    with Journal(path) as journal:
        sealed_run(journal, "new")
    assert schema_version(path) == "8"
    assert set(V8_TABLES) <= tables_of(path)
    conn = raw_connection(path)
    try:
        owners = conn.execute("SELECT run_id, controller FROM run_owners ORDER BY run_id")
        assert owners.fetchall() == [("new", None), ("old", None)]
        conn.execute(
            "INSERT INTO run_queue (run_id, protocol, version, source_sha256, params,"
            " priority, status, submitted_wall_ns, source_seq, source_hash)"
            " VALUES ('queued-run', 'p.py', '1', 'x', '{}', 0, 'queued', 1, 1, 'h')"
        )
        assert conn.execute("SELECT queue_seq FROM run_queue").fetchall() == [(1,)]
    finally:
        conn.close()
    with Journal(path, create=False) as journal:
        assert verify_journal(journal).intact
