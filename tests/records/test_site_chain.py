"""The site chain: appending inside a write transaction, anchoring every commit, reading."""

from __future__ import annotations

import itertools
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from cellauto.errors import JournalError, JournalNotFoundError, JournalOpenError, SigningKeyError
from cellauto.records import GENESIS_HASH, Journal, record_body, record_hash, verify_journal
from cellauto.records._sqlite import ledger_run_ids
from cellauto.records.backend import Conn, Location
from cellauto.records.ledger_check import check_ledger
from cellauto.records.refs import SiteRef
from cellauto.records.signing import Signer
from cellauto.records.site_chain import (
    append_in_tx,
    read_site_record,
    read_site_records,
    site_head,
)
from cellauto.records.site_payloads import SiteKind, SitePayload
from cellauto.records.site_store import SiteStore
from cellauto.testing import raw_connection
from tests.records.site_factory import TERMINAL, old_journal, policy, sealed_run


def _ledger_kinds(path: Path) -> list[tuple[str, str, int, str]]:
    conn = raw_connection(path)
    try:
        query = "SELECT kind, run_id, run_seq, run_hash FROM ledger ORDER BY seq"
        return [tuple(row) for row in conn.execute(query)]
    finally:
        conn.close()


def _site_anchors(path: Path) -> list[tuple[int, str]]:
    return [(seq, h) for kind, _, seq, h in _ledger_kinds(path) if kind == "site_anchor"]


def test_a_transaction_appends_chained_records_and_one_site_anchor(journal_path: Location) -> None:
    with SiteStore(journal_path, create=True) as store:
        with store.transaction() as tx:
            first = tx.append(policy(12))
            second = tx.append(policy(14))
            assert tx.appended() == [first, second]
        with store.reading() as conn:
            assert site_head(conn) == (1, second.hash)
            records = list(read_site_records(conn))
    assert [r.seq for r in records] == [0, 1]
    assert records[0].prev_hash == GENESIS_HASH and records[1].prev_hash == first.hash
    assert records[1].payload == policy(14) and records[1].kind is SiteKind.POLICY_SET
    assert records[1].ref == second
    assert _ledger_kinds(journal_path) == [("site_anchor", "site", 1, second.hash)]


def test_the_body_is_a_run_record_body_of_the_chain_site(journal_path: Location) -> None:
    with SiteStore(journal_path, create=True) as store:
        with store.transaction() as tx:
            ref = tx.append(policy())
            wall_ns = tx.wall_time_ns
        with store.reading() as conn:
            body, process_time_s = conn.execute(
                "SELECT body, process_time_s FROM site_records WHERE seq = 0"
            ).fetchone()
    expected = record_body(
        "site", 0, "policy_set", wall_ns / 1e9, wall_ns, GENESIS_HASH, policy().__dict__
    )
    assert body.encode() == expected
    assert record_hash(expected) == ref.hash
    assert process_time_s == wall_ns / 1e9


def test_a_transaction_that_appends_nothing_writes_no_ledger_entry(journal_path: Location) -> None:
    with SiteStore(journal_path, create=True) as store, store.transaction() as tx:
        assert tx.appended() == []
    assert _ledger_kinds(journal_path) == []


def test_an_exception_rolls_everything_back_and_propagates(journal_path: Location) -> None:
    class Boom(Exception):
        pass

    with SiteStore(journal_path, create=True) as store:
        with pytest.raises(Boom), store.transaction() as tx:
            tx.append(policy())
            tx.conn.execute("INSERT INTO credentials VALUES ('alice', 0, 'x')")
            raise Boom
        with store.reading() as conn:
            assert site_head(conn) == (-1, GENESIS_HASH)
            assert conn.execute("SELECT count(*) FROM credentials").fetchone() == (0,)
        with store.transaction() as tx:  # the store is usable again, chained from 0
            assert tx.append(policy()).seq == 0
    assert [seq for seq, _ in _site_anchors(journal_path)] == [0]


def test_each_record_is_projected_in_the_same_transaction(journal_path: Location) -> None:
    seen: list[tuple[int, int, bool]] = []

    def project(conn: Conn, payload: SitePayload, ref: SiteRef, wall_ns: int) -> None:
        stored = conn.execute("SELECT hash FROM site_records WHERE seq = ?", (ref.seq,)).fetchone()
        seen.append((ref.seq, wall_ns, stored == (ref.hash,)))
        if payload.by == "mallory":
            raise JournalError("refused by the projection")

    with SiteStore(journal_path, create=True, project=project) as store:
        with store.transaction() as tx:
            tx.append(policy())
        assert seen == [(0, tx.wall_time_ns, True)]
        with (
            pytest.raises(JournalError, match="refused by the projection"),
            store.transaction() as tx,
        ):
            tx.append(policy(by="mallory"))
        with store.reading() as conn:
            assert site_head(conn)[0] == 0


def test_a_refused_append_leaves_nothing_and_the_transaction_goes_on(
    journal_path: Location,
) -> None:
    def project(conn: Conn, payload: SitePayload, ref: SiteRef, wall_ns: int) -> None:
        conn.execute("INSERT INTO credentials VALUES (?, ?, 'x')", (payload.by, ref.seq))
        if payload.by == "mallory":
            raise JournalError("refused by the projection")

    with SiteStore(journal_path, create=True, project=project) as store:
        with store.transaction() as tx:
            with pytest.raises(JournalError, match="refused"):
                tx.append(policy(by="mallory"))
            refused = tx.append(policy(by="admin"))
            assert tx.appended() == [refused]
        with store.reading() as conn:
            assert [r.seq for r in read_site_records(conn)] == [0]
            assert conn.execute("SELECT name FROM credentials").fetchall() == [("admin",)]
    assert _site_anchors(journal_path) == [(0, refused.hash)]


def test_append_in_tx_refuses_outside_a_transaction_and_non_site_payloads(
    journal_path: Location,
) -> None:
    with SiteStore(journal_path, create=True) as store:
        with store.reading() as conn:
            conn.execute("COMMIT")  # leave the read transaction: not in one any more
            with pytest.raises(JournalError, match="inside a write transaction"):
                append_in_tx(conn, [policy()], wall_time_ns=1, project=None)
            conn.execute("BEGIN")
        with pytest.raises(JournalError, match="not SitePayload"), store.transaction() as tx:
            tx.append(SitePayload(by="x", terminal=TERMINAL))


def test_two_connections_interleaved_keep_one_contiguous_chain(journal_path: Location) -> None:
    with (
        SiteStore(journal_path, create=True) as one,
        SiteStore(journal_path) as other,
    ):
        refs = []
        for turn in range(6):
            store = one if turn % 2 == 0 else other
            with store.transaction() as tx:
                refs.append(tx.append(policy(12 + turn)))
                if turn == 3:
                    refs.append(tx.append(policy(40)))
        with one.reading() as conn:
            records = list(read_site_records(conn))
    assert [r.seq for r in records] == list(range(7))
    assert all(r.prev_hash == p.hash for p, r in itertools.pairwise(records))
    assert [ref.seq for ref in refs] == list(range(7))
    # every commit anchored its last record
    assert _site_anchors(journal_path) == [(r.seq, r.hash) for r in refs if r.seq != 3]
    conn = raw_connection(journal_path)
    try:
        assert check_ledger(conn).intact
    finally:
        conn.close()


_APPENDER = """
import sys
from cellauto.records.site_store import SiteStore
from tests.records.site_factory import policy

with SiteStore(sys.argv[1]) as store:
    for n in range(int(sys.argv[2])):
        with store.transaction() as tx:
            tx.append(policy(12 + n % 50))
"""


def test_two_processes_appending_at_once_keep_one_contiguous_anchored_chain(
    journal_path: Location,
) -> None:
    with Journal(journal_path) as journal:
        sealed_run(journal, "run-a")  # the ledger is shared with the runs
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _APPENDER, str(journal_path), "25"], cwd=repo, env=env
        )
        for _ in range(2)
    ]
    assert [child.wait(timeout=120) for child in children] == [0, 0]
    with SiteStore(journal_path) as store, store.reading() as conn:
        records = list(read_site_records(conn))
        ledger = check_ledger(conn)
    assert [r.seq for r in records] == list(range(50))
    assert all(r.prev_hash == p.hash for p, r in itertools.pairwise(records))
    assert ledger.intact
    assert [(m.run_seq, m.run_hash) for m in ledger.site] == [(r.seq, r.hash) for r in records]
    assert set(ledger.marks) == {"run-a"}


def test_read_site_record_and_kinds(journal_path: Location) -> None:
    with SiteStore(journal_path, create=True) as store:
        with store.transaction() as tx:
            tx.append(policy(12))
            tx.append(policy(13))
        with store.reading() as conn:
            record = read_site_record(conn, 1)
            assert record is not None and record.payload == policy(13)
            assert read_site_record(conn, 2) is None
            assert [r.seq for r in read_site_records(conn, start_seq=1)] == [1]
            assert list(read_site_records(conn, kinds={SiteKind.SIGNATURE})) == []


def test_an_unreadable_site_record_says_to_verify(journal_path: Location) -> None:
    with SiteStore(journal_path, create=True) as store, store.transaction() as tx:
        tx.append(policy())
    conn = raw_connection(journal_path)
    conn.execute("UPDATE site_records SET body = '{}' WHERE seq = 0")
    try:
        with pytest.raises(JournalError, match=r"site record 0 .*cellauto verify"):
            read_site_record(conn, 0)
    finally:
        conn.close()


def test_a_journal_without_the_site_table_has_no_site_records(tmp_path: Path) -> None:
    path = old_journal(tmp_path / "v3.db", 3)
    conn = raw_connection(path)
    try:
        assert site_head(conn) == (-1, GENESIS_HASH)
        assert list(read_site_records(conn)) == []
        assert read_site_record(conn, 0) is None
    finally:
        conn.close()


def test_the_store_refuses_what_journal_refuses(tmp_path: Path) -> None:
    with pytest.raises(JournalNotFoundError):
        SiteStore(tmp_path / "missing.db")
    assert not (tmp_path / "missing.db").exists()
    other = tmp_path / "other.db"
    raw_connection(other).execute("CREATE TABLE x (a)").connection.close()
    with pytest.raises(JournalOpenError, match="not a cellauto journal"):
        SiteStore(other)


def test_the_store_refuses_a_journal_signed_by_another_key(journal_path: Location) -> None:
    with SiteStore(journal_path, create=True) as store, store.transaction() as tx:
        tx.append(policy())
    with pytest.raises(SigningKeyError, match="signed by the key"):
        SiteStore(journal_path, signing_key=Signer.generate())


def test_a_new_store_journal_is_a_journal(journal_path: Location) -> None:
    with SiteStore(journal_path, create=True) as store, store.transaction() as tx:
        tx.append(policy())
    with Journal(journal_path, create=False) as journal:
        sealed_run(journal, "run-b")
        assert [s.run_id for s in journal.runs()] == ["run-b"]


def test_reading_is_read_only(journal_path: Location) -> None:
    with SiteStore(journal_path, create=True) as store:
        with store.reading() as conn, pytest.raises(sqlite3.OperationalError, match="readonly"):
            conn.execute("INSERT INTO credentials VALUES ('alice', 0, 'x')")
        with store.transaction() as tx:  # writable again afterwards
            tx.append(policy())


def test_nested_transactions_are_refused(journal_path: Location) -> None:
    with (
        SiteStore(journal_path, create=True) as store,
        store.transaction(),
        pytest.raises(JournalError, match="already open"),
        store.transaction(),
    ):
        pass


def test_the_site_chain_is_no_run(journal_path: Location) -> None:
    with Journal(journal_path) as journal:
        sealed_run(journal, "run-a")
        count = journal.run_count()
    with SiteStore(journal_path) as store, store.transaction() as tx:
        tx.append(policy())
    with Journal(journal_path, create=False) as journal:
        assert [s.run_id for s in journal.runs()] == ["run-a"]
        assert journal.run_count() == count == 1
        assert journal.resolve_run_id("r") == "run-a"
        assert ledger_run_ids(journal._read()) == ["run-a"]
        assert verify_journal(journal).runs[0].run_id == "run-a"
        with pytest.raises(JournalError, match="reserved"):
            journal.begin_run("site", lambda: 0.0)
        with pytest.raises(JournalError, match="reserved"):
            journal.resume_run("site", lambda: 0.0)
