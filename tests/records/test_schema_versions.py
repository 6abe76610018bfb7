"""Schema versions: new files are version 5 with the site and materials tables; version 2,
3 and 4 files are read as they are and become version 5 on their next run claim or first
site write."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from cellauto.cli import main
from cellauto.errors import JournalOpenError
from cellauto.records import Journal, verify_journal
from cellauto.records._schema import READABLE_VERSIONS, SCHEMA_VERSION
from cellauto.records.site_chain import read_site_records
from cellauto.records.site_store import SiteStore
from tests.records.site_factory import (
    V4_TABLES,
    V5_TABLES,
    V6_TABLES,
    V7_TABLES,
    files_of,
    old_journal,
    policy,
    schema_version,
    sealed_run,
    tables_of,
)


def test_a_new_journal_is_version_7_with_every_table(journal_path: Path) -> None:
    with Journal(journal_path):
        pass
    assert SCHEMA_VERSION == 7 and READABLE_VERSIONS == ("2", "3", "4", "5", "6", "7")
    assert schema_version(journal_path) == "7"
    assert {
        *V4_TABLES,
        *V5_TABLES,
        *V6_TABLES,
        *V7_TABLES,
        "run_owners",
        "records",
        "ledger",
        "ledger_head",
        "meta",
    } <= tables_of(journal_path)


@pytest.mark.parametrize("version", [2, 3, 4, 5, 6])
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


@pytest.mark.parametrize("version", [2, 3, 4, 5, 6])
def test_an_old_journal_becomes_version_7_on_its_first_site_write(
    tmp_path: Path, version: int
) -> None:
    path = old_journal(tmp_path / "old.db", version)
    with SiteStore(path) as store, store.transaction() as tx:
        tx.append(policy())
    assert schema_version(path) == "7"
    assert {*V4_TABLES, *V5_TABLES, *V6_TABLES, *V7_TABLES, "run_owners"} <= tables_of(path)
    with Journal(path, create=False) as journal:
        report = verify_journal(journal)
    assert report.intact, report
    assert report.site.records == 1


@pytest.mark.parametrize("version", [2, 3, 4, 5, 6])
def test_an_old_journal_becomes_version_7_on_its_next_claim(tmp_path: Path, version: int) -> None:
    path = old_journal(tmp_path / "old.db", version)
    with Journal(path) as journal:
        sealed_run(journal, "new")
    assert schema_version(path) == "7"
    assert {*V4_TABLES, *V5_TABLES, *V6_TABLES, *V7_TABLES, "run_owners"} <= tables_of(path)
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


def test_a_newer_journal_is_refused(journal_path: Path) -> None:
    with Journal(journal_path):
        pass
    conn = sqlite3.connect(journal_path)
    conn.execute("UPDATE meta SET value = '8' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(JournalOpenError, match=r"schema version 8.*2, 3, 4, 5, 6, 7"):
        SiteStore(journal_path)
    with pytest.raises(JournalOpenError, match="schema version 8"):
        Journal(journal_path, create=False)
