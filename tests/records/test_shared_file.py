"""The journal file shared, and the journal's writer under the unexpected: found in review.

Two writers on one file (another process, another Journal object) chain their ledger
entries one after the other; a writer that meets an unexpected error reports it rather
than dying with waiters blocked; verify reads one state of a file being written; a
journal signed by one key never makes another key before refusing it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cellauto.errors import JournalError, SigningKeyError
from cellauto.records import Journal, RecordKind, _sqlite, verify_journal
from cellauto.records import ledger_check as ledger_check_module
from cellauto.records.backend import Location
from tests.records.conftest import MakeClock
from tests.records.factory import payload_of


def _reading(i: int) -> object:
    return payload_of(RecordKind.READING, {"i": i})


def test_two_writers_on_one_file_chain_their_ledger_entries(
    journal_path: Location, make_clock: MakeClock
) -> None:
    first = Journal(journal_path)
    a = first.begin_run("run-a", make_clock())
    a.append(payload_of(RecordKind.RUN_STARTED, {"run_id": "run-a"}))
    first.flush()
    with Journal(journal_path) as second:  # e.g. another controller process
        b = second.begin_run("run-b", make_clock())
        b.append(payload_of(RecordKind.RUN_STARTED, {"run_id": "run-b"}))
        b.seal()
    for i in range(300):  # three anchors' worth: each a ledger entry after the other's
        a.append(_reading(i))  # type: ignore[arg-type]
    a.seal()
    first.close()
    with Journal(journal_path, create=False) as journal:
        report = verify_journal(journal)
        assert report.ledger.intact, report.ledger
        assert [(r.run_id, r.intact, r.sealed, r.records) for r in report.runs] == [
            ("run-a", True, True, 301),
            ("run-b", True, True, 1),
        ]


def test_an_unexpected_writer_error_is_reported_not_hung(
    journal_path: Location, make_clock: MakeClock
) -> None:
    with Journal(journal_path) as journal:
        run = journal.begin_run("run-a", make_clock(), wall_clock_ns=lambda: 2**63 + 5)
        run.append(_reading(1))  # type: ignore[arg-type]
        with pytest.raises(JournalError, match="unexpected OverflowError"):
            journal.flush()  # SQLite's INTEGER cannot hold it: the writer says so
        assert journal._writer is not None and journal._writer._thread.is_alive()
        journal._buffer.clear()  # (the test's bad rows; nothing else is pending)
        journal._writer._pending.clear()
        journal._writer._stalled = False


def test_verify_reads_one_state_of_a_file_being_written(
    journal_path: Location, make_clock: MakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Journal(journal_path) as journal:
        run = journal.begin_run("run-a", make_clock())
        run.append(payload_of(RecordKind.RUN_STARTED, {"run_id": "run-a"}))
        run.seal()
    read_head = _sqlite.ledger_head

    def another_controller_commits_meanwhile(conn: object) -> object:
        with Journal(journal_path) as other:  # between reading the entries and the head
            late = other.begin_run("run-late", make_clock())
            late.append(payload_of(RecordKind.RUN_STARTED, {"run_id": "run-late"}))
            late.seal()
        return read_head(conn)  # type: ignore[arg-type]

    monkeypatch.setattr(
        ledger_check_module._sqlite, "ledger_head", another_controller_commits_meanwhile
    )
    with Journal(journal_path, create=False) as journal:
        report = verify_journal(journal)
    assert report.ledger.intact and [r.run_id for r in report.runs] == ["run-a"]


def test_a_journal_signed_by_another_key_makes_no_key_before_refusing(
    journal_path: Location, make_clock: MakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Journal(journal_path) as journal:
        journal.begin_run("run-a", make_clock()).append(
            payload_of(RecordKind.RUN_STARTED, {"run_id": "run-a"})
        )
    missing = tmp_path / "elsewhere" / "signing.key"
    monkeypatch.setenv("CELLAUTO_SIGNING_KEY", str(missing))
    with (
        Journal(journal_path) as journal,
        pytest.raises(
            SigningKeyError,
            match=r"signed by the key with fingerprint \w+, and there is no signing key",
        ),
    ):
        journal.begin_run("run-b", make_clock())
    assert not missing.exists() and not missing.parent.exists()
